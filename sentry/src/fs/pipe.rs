//! Pipes and FIFOs, kept by the sentry. The buffer is a ring of page-sized
//! slots, as Linux's `pipe_buffer`s: a write of at most `PIPE_BUF` bytes
//! either fits wholly in the last slot or takes a fresh one, so it is
//! atomic; capacity is a number of slots (16 by default: 64 KiB);
//! `O_DIRECT` writes make packets (one slot each, read whole or cut).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_DIRECT, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use crate::vfs::{File, FileOps};

/// `PIPE_BUF`: writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// Slot size.
const SLOT: usize = 4096;
/// Default capacity, in slots.
const DEFAULT_SLOTS: usize = 16;
/// `/proc/sys/fs/pipe-max-size`: the most an unprivileged `F_SETPIPE_SZ`
/// may ask for.
pub const PIPE_MAX_SIZE: usize = 1 << 20;
/// Largest capacity even with `CAP_SYS_RESOURCE` (Linux's limit is
/// larger, but a sandbox should not hold gigabytes in one pipe).
const PIPE_HARD_MAX: usize = 64 << 20;

#[derive(Debug)]
struct Slot {
    data: Vec<u8>,
    pos: usize,
    packet: bool,
}

impl Slot {
    fn len(&self) -> usize {
        self.data.len() - self.pos
    }
}

#[derive(Debug)]
struct State {
    slots: VecDeque<Slot>,
    max_slots: usize,
    readers: usize,
    writers: usize,
    /// Bytes buffered.
    bytes: usize,
    /// FIFO opens: bumped by each reader and writer open (a blocked open
    /// waits for the other side's count to move).
    r_opens: u64,
    w_opens: u64,
}

/// A pipe: the buffer both ends share.
pub struct Pipe {
    state: Mutex<State>,
    /// Readers wait for `IN`, writers for `OUT`, FIFO opens for either.
    queue: WaitQueue,
    /// Identity for `fstat` (an inode number on pipefs).
    ino: u64,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe").field("ino", &self.ino).finish_non_exhaustive()
    }
}

fn next_ino() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Pipe {
    /// A new, empty pipe with no ends open.
    pub fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(State {
                slots: VecDeque::new(),
                max_slots: DEFAULT_SLOTS,
                readers: 0,
                writers: 0,
                bytes: 0,
                r_opens: 0,
                w_opens: 0,
            }),
            queue: WaitQueue::default(),
            ino: next_ino(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An end: a file description reading, writing or (FIFOs opened
    /// `O_RDWR`) both.
    /// A new end of the pipe opened with access `acc` (`flags`: status
    /// flags), as a FIFO open or `/proc/PID/fd/N` makes.
    pub fn end(self: &Arc<Self>, acc: u32, flags: u32, path: Option<crate::vfs::Path>) -> Arc<File> {
        {
            let mut st = self.lock();
            if acc == O_RDONLY || acc == O_RDWR {
                st.readers += 1;
                st.r_opens += 1;
            }
            if acc == O_WRONLY || acc == O_RDWR {
                st.writers += 1;
                st.w_opens += 1;
            }
        }
        self.queue.notify();
        let ops = Box::new(PipeEnd { pipe: self.clone(), acc });
        match path {
            Some(p) => File::with_path(ops, acc | flags, p),
            None => File::new(ops, acc | flags),
        }
    }

    /// Bytes buffered (`FIONREAD`).
    pub fn available(&self) -> usize {
        self.lock().bytes
    }

    /// Capacity in bytes (`F_GETPIPE_SZ`).
    pub fn capacity(&self) -> usize {
        self.lock().max_slots * SLOT
    }

    /// `F_SETPIPE_SZ`: rounds `size` up to a power of two of pages;
    /// `EBUSY` if the data does not fit, `EPERM` past `PIPE_MAX_SIZE`
    /// without `privileged`.
    pub fn set_capacity(&self, size: u64, privileged: bool) -> Result<usize, Errno> {
        let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?.max(SLOT);
        let size = size.checked_next_power_of_two().ok_or(Errno::EINVAL)?;
        if size > PIPE_HARD_MAX {
            return Err(if privileged { Errno::EINVAL } else { Errno::EPERM });
        }
        if size > PIPE_MAX_SIZE && !privileged {
            return Err(Errno::EPERM);
        }
        let slots = size / SLOT;
        let mut st = self.lock();
        if st.slots.len() > slots {
            return Err(Errno::EBUSY);
        }
        st.max_slots = slots;
        drop(st);
        self.queue.notify_events(events::OUT);
        Ok(size)
    }

    /// Copies up to `buf.len()` bytes out (one packet at most).
    fn take(st: &mut State, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(s) = st.slots.front_mut() else { break };
            let k = s.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&s.data[s.pos..s.pos + k]);
            n += k;
            s.pos += k;
            let packet = s.packet;
            if packet || s.len() == 0 {
                // A packet is read whole or its rest is dropped.
                let gone = s.len();
                st.bytes -= gone;
                st.slots.pop_front();
            }
            if packet {
                break;
            }
        }
        st.bytes -= n;
        n
    }

    fn read(&self, t: &Task, nonblock: bool, buf: &mut [u8]) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let _reg = (!nonblock).then(|| self.queue.register(&t.shared, events::IN));
        loop {
            {
                let mut st = self.lock();
                if st.bytes > 0 {
                    let n = Self::take(&mut st, buf);
                    drop(st);
                    self.queue.notify_events(events::OUT);
                    return Ok(n);
                }
                if st.writers == 0 {
                    return Ok(0);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    /// Appends as much of `data[*done..]` as fits; `Err(EPIPE)` without
    /// readers.
    fn put(st: &mut State, data: &[u8], done: &mut usize, packet: bool) {
        let len = data.len();
        if *done == 0 && !packet {
            // The tail (len mod page size) merges into the last slot only
            // if it fits wholly: atomicity.
            let chars = len % SLOT;
            if chars > 0 {
                if let Some(last) = st.slots.back_mut().filter(|s| !s.packet && s.data.len() + chars <= SLOT)
                {
                    last.data.extend_from_slice(&data[..chars]);
                    st.bytes += chars;
                    *done = chars;
                }
            }
        }
        while *done < len && st.slots.len() < st.max_slots {
            let k = (len - *done).min(SLOT);
            st.slots.push_back(Slot { data: data[*done..*done + k].to_vec(), pos: 0, packet });
            st.bytes += k;
            *done += k;
        }
    }

    fn write(&self, t: &Task, nonblock: bool, packet: bool, data: &[u8]) -> Result<usize, Errno> {
        if data.is_empty() {
            return Ok(0);
        }
        let _reg = (!nonblock).then(|| self.queue.register(&t.shared, events::OUT));
        let mut done = 0;
        loop {
            {
                let mut st = self.lock();
                if st.readers == 0 {
                    return if done > 0 { Ok(done) } else { Err(Errno::EPIPE) };
                }
                let room = st.max_slots - st.slots.len();
                // A write of at most PIPE_BUF goes in at once or not at
                // all.
                let atomic = data.len() <= PIPE_BUF;
                let fits_tail = st.slots.back().is_some_and(|s| {
                    !s.packet && !packet && s.data.len() + data.len() % SLOT <= SLOT && data.len() < SLOT
                });
                if !atomic || room > 0 || fits_tail {
                    let before = done;
                    Self::put(&mut st, data, &mut done, packet);
                    if done > before {
                        drop(st);
                        self.queue.notify_events(events::IN);
                        if done == data.len() {
                            return Ok(done);
                        }
                        continue;
                    }
                }
            }
            if nonblock {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            if let Err(e) = t.wait_kick(None) {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(if e == Errno::EINTR { Errno::ERESTARTSYS } else { e })
                };
            }
        }
    }

    /// Waits until the pipe has data (`Ok(true)`) or no writers and no
    /// data (`Ok(false)`: end of file); `EAGAIN` instead of waiting with
    /// `nonblock`.
    pub fn wait_data(&self, t: &Task, nonblock: bool) -> Result<bool, Errno> {
        let _reg = (!nonblock).then(|| self.queue.register(&t.shared, events::IN));
        loop {
            {
                let st = self.lock();
                if st.bytes > 0 {
                    return Ok(true);
                }
                if st.writers == 0 {
                    return Ok(false);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    /// Waits until the pipe has room; returns how many bytes surely fit.
    /// `EPIPE` without readers, `EAGAIN` instead of waiting with
    /// `nonblock`.
    pub fn wait_room(&self, t: &Task, nonblock: bool) -> Result<usize, Errno> {
        let _reg = (!nonblock).then(|| self.queue.register(&t.shared, events::OUT));
        loop {
            {
                let st = self.lock();
                if st.readers == 0 {
                    return Err(Errno::EPIPE);
                }
                let room = (st.max_slots - st.slots.len()) * SLOT;
                if room > 0 {
                    return Ok(room);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    /// Takes up to `max` bytes (without waiting).
    pub fn take_bytes(&self, max: usize) -> Vec<u8> {
        let mut st = self.lock();
        let mut b = vec![0u8; max.min(st.bytes)];
        let n = Self::take(&mut st, &mut b);
        b.truncate(n);
        drop(st);
        self.queue.notify_events(events::OUT);
        b
    }

    /// Appends `data` (at most the room [`wait_room`](Self::wait_room)
    /// reported, so it all fits); returns how much went in.
    pub fn put_bytes(&self, data: &[u8]) -> usize {
        let mut st = self.lock();
        let mut done = 0;
        let mut at = 0;
        while at < data.len() && st.slots.len() < st.max_slots {
            let k = (data.len() - at).min(SLOT);
            st.slots.push_back(Slot { data: data[at..at + k].to_vec(), pos: 0, packet: false });
            st.bytes += k;
            at += k;
            done += k;
        }
        drop(st);
        self.queue.notify_events(events::IN);
        done
    }

    /// Moves (or, for `tee`, copies) up to `max` bytes from `from` to
    /// `to` without waiting, under both locks (no byte is lost between
    /// them). `EINVAL` for the same pipe.
    pub fn transfer(from: &Pipe, to: &Pipe, max: usize, consume: bool) -> Result<usize, Errno> {
        if std::ptr::eq(from, to) {
            return Err(Errno::EINVAL);
        }
        let (mut a, mut b);
        if (from as *const Pipe) < (to as *const Pipe) {
            a = from.lock();
            b = to.lock();
        } else {
            b = to.lock();
            a = from.lock();
        }
        let room = (b.max_slots - b.slots.len()) * SLOT;
        let n = max.min(room).min(a.bytes);
        if n == 0 {
            return Ok(0);
        }
        let mut buf = vec![0u8; n];
        let got = if consume {
            Self::take(&mut a, &mut buf)
        } else {
            let mut k = 0;
            for s in &a.slots {
                let c = s.len().min(n - k);
                buf[k..k + c].copy_from_slice(&s.data[s.pos..s.pos + c]);
                k += c;
                if k == n {
                    break;
                }
            }
            k
        };
        let mut at = 0;
        while at < got {
            let k = (got - at).min(SLOT);
            b.slots.push_back(Slot { data: buf[at..at + k].to_vec(), pos: 0, packet: false });
            b.bytes += k;
            at += k;
        }
        drop((a, b));
        from.queue.notify_events(events::OUT);
        to.queue.notify_events(events::IN);
        Ok(got)
    }

    /// Whether the pipe has readers (`splice` to it fails with `EPIPE`).
    pub fn has_readers(&self) -> bool {
        self.lock().readers > 0
    }

    fn readiness(&self, acc: u32, mask: u32) -> u32 {
        let st = self.lock();
        let mut r = 0;
        if acc == O_RDONLY || acc == O_RDWR {
            if st.bytes > 0 {
                r |= events::IN | events::RDNORM;
            }
            if st.writers == 0 && st.w_opens > 0 {
                r |= events::HUP;
            }
        }
        if acc == O_WRONLY || acc == O_RDWR {
            if st.slots.len() < st.max_slots {
                r |= events::OUT | events::WRNORM;
            }
            if st.readers == 0 {
                r |= events::ERR;
            }
        }
        r & (mask | events::HUP | events::ERR)
    }

    fn release(&self, acc: u32) {
        {
            let mut st = self.lock();
            if acc == O_RDONLY || acc == O_RDWR {
                st.readers -= 1;
            }
            if acc == O_WRONLY || acc == O_RDWR {
                st.writers -= 1;
            }
        }
        self.queue.notify();
    }
}

/// One end of a pipe.
struct PipeEnd {
    pipe: Arc<Pipe>,
    acc: u32,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.pipe.release(self.acc);
    }
}

impl FileOps for PipeEnd {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() {
            return Err(Errno::ESPIPE);
        }
        self.pipe.read(t, file.nonblocking(), buf)
    }

    fn write(&self, t: &Task, file: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() {
            return Err(Errno::ESPIPE);
        }
        self.pipe.write(t, file.nonblocking(), file.flags() & O_DIRECT != 0, data)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { ino: self.pipe.ino, mode: 0o010600, nlink: 1, blksize: 4096, ..Stat::default() })
    }

    fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        const FIONREAD: u32 = 0x541b;
        match cmd {
            FIONREAD => {
                let n = i32::try_from(self.pipe.available()).unwrap_or(i32::MAX);
                t.mm.write_obj(arg, &n)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        self.pipe.readiness(self.acc, mask)
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.queue)
    }

    fn pipe(&self) -> Option<&Arc<Pipe>> {
        Some(&self.pipe)
    }
}

/// `pipe2`: the read and write ends.
pub fn pipe(flags: u32) -> (Arc<File>, Arc<File>) {
    let p = Pipe::new();
    let extra = flags & (O_NONBLOCK | O_DIRECT);
    // O_DIRECT makes packets on the write side; reads honour them anyway.
    (p.end(O_RDONLY, extra & O_NONBLOCK, None), p.end(O_WRONLY, extra, None))
}

/// FIFOs of the sandbox, by (device, inode): every open of the same node
/// meets on one pipe while any end is open.
type FifoTable = HashMap<(u64, u64), Weak<Pipe>>;
static FIFOS: Mutex<Option<FifoTable>> = Mutex::new(None);

/// Opens the FIFO `key` (`open(2)` on a named pipe): a reader waits for a
/// writer and a writer for a reader unless `O_NONBLOCK` (then a writer
/// without readers fails with `ENXIO`); `O_RDWR` never waits.
pub fn open_fifo(
    t: &Task,
    path: crate::vfs::Path,
    key: (u64, u64),
    acc: u32,
    flags: u32,
) -> Result<Arc<File>, Errno> {
    let pipe = {
        let mut g = FIFOS.lock().unwrap_or_else(|p| p.into_inner());
        let m = g.get_or_insert_with(HashMap::new);
        m.retain(|_, w| w.strong_count() > 0);
        match m.get(&key).and_then(Weak::upgrade) {
            Some(p) => p,
            None => {
                let p = Pipe::new();
                m.insert(key, Arc::downgrade(&p));
                p
            }
        }
    };
    let nonblock = flags & O_NONBLOCK != 0;
    if acc == O_WRONLY && nonblock && pipe.lock().readers == 0 {
        return Err(Errno::ENXIO);
    }
    let file = pipe.end(acc, flags, Some(path));
    if acc == O_RDWR || nonblock {
        return Ok(file);
    }
    // Wait for the other side to open (or to have opened since we did).
    let seen = {
        let st = pipe.lock();
        if acc == O_RDONLY {
            (st.writers > 0, st.w_opens)
        } else {
            (st.readers > 0, st.r_opens)
        }
    };
    if seen.0 {
        return Ok(file);
    }
    let _reg = pipe.queue.register(&t.shared, events::ALL);
    loop {
        {
            let st = pipe.lock();
            let moved = if acc == O_RDONLY { st.w_opens != seen.1 } else { st.r_opens != seen.1 };
            if moved {
                return Ok(file);
            }
        }
        t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(slots: usize) -> State {
        State {
            slots: VecDeque::new(),
            max_slots: slots,
            readers: 1,
            writers: 1,
            bytes: 0,
            r_opens: 1,
            w_opens: 1,
        }
    }

    #[test]
    fn small_writes_merge_and_big_ones_take_slots() {
        let mut st = state(16);
        let mut done = 0;
        Pipe::put(&mut st, b"abc", &mut done, false);
        assert_eq!((done, st.slots.len()), (3, 1));
        let mut done = 0;
        Pipe::put(&mut st, &[7u8; 5000], &mut done, false);
        // 5000 = 4096 + 904: the 904-byte tail merges into the first slot.
        assert_eq!((done, st.slots.len(), st.bytes), (5000, 2, 5003));
        let mut buf = [0u8; 10];
        assert_eq!(Pipe::take(&mut st, &mut buf), 10);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(st.bytes, 4993);
    }

    #[test]
    fn capacity_is_in_slots() {
        let mut st = state(16);
        let mut done = 0;
        Pipe::put(&mut st, &vec![1u8; 100_000], &mut done, false);
        assert_eq!(done, 65536, "16 pages");
        let mut st = state(2);
        for i in 0..2 {
            let mut d = 0;
            Pipe::put(&mut st, b"p", &mut d, true);
            assert_eq!(d, 1, "packet {i}");
        }
        let mut d = 0;
        Pipe::put(&mut st, b"p", &mut d, true);
        assert_eq!(d, 0, "one slot per packet");
    }

    #[test]
    fn packets_are_read_one_at_a_time_and_cut() {
        let mut st = state(16);
        for p in [&b"hello"[..], b"world"] {
            let mut d = 0;
            Pipe::put(&mut st, p, &mut d, true);
        }
        let mut buf = [0u8; 3];
        assert_eq!(Pipe::take(&mut st, &mut buf), 3);
        assert_eq!(&buf, b"hel");
        let mut buf = [0u8; 16];
        assert_eq!(Pipe::take(&mut st, &mut buf), 5, "the rest of the first packet was dropped");
        assert_eq!(&buf[..5], b"world");
        assert_eq!(st.bytes, 0);
    }
}
