//! Batch pages: one read-only page per stub process through which the
//! sentry hands the stub several address-space calls at once (the stub's
//! `batch` entry), so that a `fork` or a fresh program's first mappings cost
//! one ptrace round trip instead of one each.
//!
//! The pages are slots of one memfd the platform creates at start-up. The
//! sentry maps the whole file read-write; each stub process maps its slot
//! read-only just below the stub code (above the application's range), so
//! the application, which may run other threads in the same process while
//! a batch runs, can read the requests but never change them.
//!
//! Each slot also has a *result page* (in the file's second half), mapped
//! read-write just below the batch page, where calls injected into the
//! stub leave what they write (`clock_gettime` of the stub thread's CPU
//! clock). The application can write it too: the sentry treats what it
//! reads there as hostile input.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use crate::{Error, Result, PAGE_SIZE};

/// Words per request: number, six arguments, one unused.
const WORDS: usize = 8;
/// Requests per page.
pub(crate) const PER_PAGE: usize = 4096 / (WORDS * 8);
/// Stub processes that can have a batch page at once (more simply go
/// without: their address-space calls are made one by one).
const SLOTS: u32 = 4096;

/// The batch file and its slots.
#[derive(Debug)]
pub(crate) struct BatchPages {
    file: OwnedFd,
    /// Where the sentry maps the file (read-write, shared).
    base: usize,
    /// Slots never handed out start at `next`; freed ones are reused.
    free: Mutex<(u32, Vec<u32>)>,
}

impl BatchPages {
    /// Creates the file (sparse: a slot's page is allocated on first use)
    /// and maps it into the sentry.
    pub fn new() -> Result<BatchPages> {
        let name = c"rvisor-batch";
        // SAFETY: memfd_create with a valid C string; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::Os { op: "memfd_create batch pages", err: std::io::Error::last_os_error() });
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let file = super::files::above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })?;
        let len = 2 * u64::from(SLOTS) * PAGE_SIZE;
        let len_i = libc::off_t::try_from(len).map_err(|_| Error::Internal("batch size".into()))?;
        // SAFETY: ftruncate on the descriptor owned above.
        if unsafe { libc::ftruncate(file.as_raw_fd(), len_i) } != 0 {
            return Err(Error::Os { op: "size batch pages", err: std::io::Error::last_os_error() });
        }
        let len_us = usize::try_from(len).map_err(|_| Error::Internal("batch size".into()))?;
        // It lives as long as this object.
        let base = crate::sys::map_shared(file.as_fd(), len_us, "map batch pages")?;
        Ok(BatchPages { file, base, free: Mutex::new((0, Vec::new())) })
    }

    /// The file stub processes map their slot from.
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// A free slot, if any.
    pub fn alloc(&self) -> Option<u32> {
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = f.1.pop() {
            return Some(s);
        }
        (f.0 < SLOTS).then(|| {
            f.0 += 1;
            f.0 - 1
        })
    }

    /// Gives a slot back: its process is dead (or never ran).
    pub fn release(&self, slot: u32) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).1.push(slot);
    }

    /// Offset of a slot's page in the file.
    pub fn offset(slot: u32) -> u64 {
        u64::from(slot) * PAGE_SIZE
    }

    /// Offset of a slot's result page in the file.
    pub fn result_offset(slot: u32) -> u64 {
        (u64::from(SLOTS) + u64::from(slot)) * PAGE_SIZE
    }

    /// The first two words of `slot`'s result page (written by the stub,
    /// or by the application: any value). The caller holds the slot's
    /// process's batch lock.
    pub fn read_result(&self, slot: u32) -> [u64; 2] {
        [self.result_word(slot, 0), self.result_word(slot, 1)]
    }

    /// Word `i` of `slot`'s result page (any value: see
    /// [`BatchPages::read_result`]). The caller holds the batch lock.
    pub fn result_word(&self, slot: u32, i: usize) -> u64 {
        self.result_ptr(slot, i).map_or(0, |p| {
            // SAFETY: `result_ptr` checked that `p` is a word inside the
            // live shared mapping; read volatile since a stub may write it.
            unsafe { std::ptr::read_volatile(p) }
        })
    }

    /// Writes `words` into `slot`'s result page from word `at` on. The
    /// caller holds the slot's process's batch lock.
    pub fn write_result(&self, slot: u32, at: usize, words: &[u64]) {
        for (i, &w) in words.iter().enumerate() {
            if let Some(p) = self.result_ptr(slot, at + i) {
                // SAFETY: `result_ptr` checked that `p` is a word inside
                // the live shared mapping.
                unsafe { std::ptr::write_volatile(p, w) };
            }
        }
    }

    fn result_ptr(&self, slot: u32, i: usize) -> Option<*mut u64> {
        if slot >= SLOTS || i >= 4096 / 8 {
            return None;
        }
        let off = usize::try_from(Self::result_offset(slot)).ok()?;
        Some((self.base + off + 8 * i) as *mut u64)
    }

    /// Writes `words` at the start of `slot`'s page (systrap's set-up
    /// structures). The caller holds the slot's process's batch lock.
    pub fn write_words(&self, slot: u32, words: &[u64]) {
        assert!(slot < SLOTS && words.len() <= 4096 / 8, "batch slot {slot} or size out of range");
        let off = usize::try_from(Self::offset(slot)).unwrap_or(usize::MAX);
        // SAFETY: as in `write`: inside slot `slot`'s page of the live
        // mapping, at most one page, one writer (the lock holder).
        unsafe {
            std::ptr::copy_nonoverlapping(words.as_ptr(), (self.base + off) as *mut u64, words.len());
        }
    }

    /// Writes up to [`PER_PAGE`] requests into `slot`'s page. The caller
    /// holds the slot's process's batch lock (one writer per slot).
    pub fn write(&self, slot: u32, calls: &[[u64; 7]]) {
        assert!(
            slot < SLOTS && calls.len() <= PER_PAGE,
            "batch slot {slot} or size {} out of range",
            calls.len()
        );
        let mut words = [0u64; PER_PAGE * WORDS];
        for (i, c) in calls.iter().enumerate() {
            words[i * WORDS..i * WORDS + 7].copy_from_slice(c);
        }
        let n = calls.len() * WORDS;
        let off = usize::try_from(Self::offset(slot)).unwrap_or(usize::MAX);
        // SAFETY: `base + off` is the start of slot `slot`'s page inside
        // the live shared mapping made in `new` (slot < SLOTS), `n` words
        // fit one page (calls.len() <= PER_PAGE), and only the holder of
        // the slot's lock writes it.
        unsafe {
            std::ptr::copy_nonoverlapping(words.as_ptr(), (self.base + off) as *mut u64, n);
        }
    }
}

impl Drop for BatchPages {
    fn drop(&mut self) {
        let len = usize::try_from(2 * u64::from(SLOTS) * PAGE_SIZE).unwrap_or(0);
        // SAFETY: unmapping the mapping made in `new`, used by nobody now.
        unsafe { libc::munmap(self.base as *mut libc::c_void, len) };
    }
}
