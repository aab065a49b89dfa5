//! The ELF loader on hostile input: any bytes must give a loaded image or
//! an errno (`ENOEXEC` for malformed files), never a panic, a hang or an
//! unbounded allocation. Loads into an address space of the fake platform
//! (no host processes), so whole loads run, not just the parser.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rvisor_platform::fake::FakePlatform;
use rvisor_sentry::loader::elf::ElfFile;
use rvisor_sentry::loader::{load, AuxvFacts, LoadArgs};
use rvisor_sentry::mm::{MemoryFile, MemoryManager};

fn memory_file() -> Arc<MemoryFile> {
    static MF: OnceLock<Arc<MemoryFile>> = OnceLock::new();
    MF.get_or_init(|| Arc::new(MemoryFile::new(1 << 30).expect("memory file"))).clone()
}

fuzz_target!(|data: &[u8]| {
    let parsed = ElfFile::parse(data);
    let mm = MemoryManager::new(&FakePlatform::default(), memory_file()).expect("mm");
    let args = LoadArgs {
        argv: vec![b"fuzz".to_vec()],
        envp: vec![],
        execfn: b"/fuzz".to_vec(),
        uid: 0,
        euid: 0,
        gid: 0,
        egid: 0,
        stack_limit: 8 << 20,
        randomize: true,
    };
    let facts = AuxvFacts { hwcap: 0, hwcap2: 0, minsigstksz: 2048 };
    let loaded = load(&mm, data, None, &args, facts);
    // A file the parser rejects is never loaded.
    if parsed.is_err() {
        assert!(loaded.is_err());
    }
    if let Ok(l) = loaded {
        assert_eq!(l.sp % 16, 0);
    }
});
