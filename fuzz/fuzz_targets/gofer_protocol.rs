//! The gofer protocol's decoders on hostile input: any bytes must decode
//! to a message or a `DecodeError`, never a panic, a hang or an unbounded
//! allocation; and whatever decodes must encode back to bytes that decode
//! to the same message (one validating decoder, no second interpretation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvisor_gofer::protocol::{Reply, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok((id, req)) = Request::decode(data) {
        let again = Request::decode(&req.encode(id)).expect("a decoded request re-encodes");
        assert_eq!(again, (id, req));
    }
    if let Ok((id, rep)) = Reply::decode(data) {
        let again = Reply::decode(&rep.encode(id)).expect("a decoded reply re-encodes");
        assert_eq!(again, (id, rep));
    }
});
