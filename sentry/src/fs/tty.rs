//! Pseudo-terminals, served by the sentry: `/dev/ptmx` makes a pair, the
//! replica is `/dev/pts/N`, `/dev/tty` is the caller's controlling
//! terminal. Between the two sides sits Linux's line discipline (`n_tty`):
//! input processing (`ICRNL`, `IGNCR`, `INLCR`, `ISTRIP`, `IXON` flow
//! control), canonical mode with editing (erase, word erase, kill,
//! literal next, reprint, end of file, end of line), echo (`ECHO`,
//! `ECHOE`, `ECHOK`, `ECHOKE`, `ECHOCTL`, `ECHONL`), `ISIG` characters
//! signalling the foreground process group, non-canonical `VMIN`/`VTIME`
//! reads, and output processing (`OPOST`, `ONLCR`, `OCRNL`, `ONOCR`,
//! `ONLRET`, `XTABS`). Sessions take a terminal as their controlling
//! terminal (`TIOCSCTTY`, or opening it without `O_NOCTTY`); a process of
//! a background group that reads it gets `SIGTTIN`, one that writes it
//! with `TOSTOP` set or changes its settings gets `SIGTTOU`.
//!
//! A terminal the host sees (`rvisor do -t`, a console socket) is a pair
//! whose master side the sentry bridges to a host descriptor
//! ([`Pty::bridge_input`], [`Pty::bridge_output`]): the host side stays in
//! raw mode, the line discipline runs here. No host terminal is ever
//! handed to the application.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rvisor_syscalls::abi::{Termios, Winsize};
use rvisor_syscalls::consts::ioctl as nr;
use rvisor_syscalls::Errno;

use super::synth::{Meta, SynthDir};
use crate::kernel::signal::{self, sig, Siginfo};
use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::{Kernel, Task, ThreadGroup};
use crate::vfs::file::{File, FileOps};
use crate::vfs::inode::{mode, FsStats, Inode, InodeAttr, InodeRef, SetAttr};

/// `statfs` type of devpts.
pub const DEVPTS_MAGIC: u64 = 0x1cd1;
/// Most pairs a sandbox may have at once (`kernel.pty.max`'s default).
pub const MAX_PTYS: usize = 4096;
/// Input the line discipline holds (`N_TTY_BUF_SIZE - 1`).
const INPUT_MAX: usize = 4095;
/// Output a replica's writers may queue before they wait for the master
/// side to read.
const OUTPUT_MAX: usize = 16 << 10;
/// Room for echoes past [`OUTPUT_MAX`] (dropped beyond, as Linux drops
/// echoes it has no room for).
const ECHO_SLACK: usize = 4096;

/// Termios flags and control-character indices (x86_64).
#[allow(missing_docs)]
pub mod tc {
    pub const IGNBRK: u32 = 0o1;
    pub const ISTRIP: u32 = 0o40;
    pub const INLCR: u32 = 0o100;
    pub const IGNCR: u32 = 0o200;
    pub const ICRNL: u32 = 0o400;
    pub const IXON: u32 = 0o2000;
    pub const IXANY: u32 = 0o4000;
    pub const IUTF8: u32 = 0o40000;
    pub const OPOST: u32 = 0o1;
    pub const ONLCR: u32 = 0o4;
    pub const OCRNL: u32 = 0o10;
    pub const ONOCR: u32 = 0o20;
    pub const ONLRET: u32 = 0o40;
    pub const TABDLY: u32 = 0o14000;
    pub const XTABS: u32 = 0o14000;
    pub const B38400: u32 = 0o17;
    pub const CS8: u32 = 0o60;
    pub const CREAD: u32 = 0o200;
    pub const ISIG: u32 = 0o1;
    pub const ICANON: u32 = 0o2;
    pub const ECHO: u32 = 0o10;
    pub const ECHOE: u32 = 0o20;
    pub const ECHOK: u32 = 0o40;
    pub const ECHONL: u32 = 0o100;
    pub const NOFLSH: u32 = 0o200;
    pub const TOSTOP: u32 = 0o400;
    pub const ECHOCTL: u32 = 0o1000;
    pub const ECHOKE: u32 = 0o4000;
    pub const IEXTEN: u32 = 0o100000;
    pub const VINTR: usize = 0;
    pub const VQUIT: usize = 1;
    pub const VERASE: usize = 2;
    pub const VKILL: usize = 3;
    pub const VEOF: usize = 4;
    pub const VTIME: usize = 5;
    pub const VMIN: usize = 6;
    pub const VSTART: usize = 8;
    pub const VSTOP: usize = 9;
    pub const VSUSP: usize = 10;
    pub const VEOL: usize = 11;
    pub const VREPRINT: usize = 12;
    pub const VWERASE: usize = 14;
    pub const VLNEXT: usize = 15;
    pub const VEOL2: usize = 16;
}
use tc::*;

/// A new terminal's settings, as Linux gives a pty replica
/// (`tty_std_termios` with `B38400 | CS8 | CREAD`).
pub fn default_termios() -> Termios {
    let mut cc = [0u8; 19];
    cc[..17].copy_from_slice(b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00");
    Termios {
        iflag: ICRNL | IXON,
        oflag: OPOST | ONLCR,
        cflag: B38400 | CS8 | CREAD,
        lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
        line: 0,
        cc,
    }
}

/// Packet-mode status bits.
const PKT_FLUSHREAD: u8 = 1;
const PKT_FLUSHWRITE: u8 = 2;
const PKT_STOP: u8 = 4;
const PKT_START: u8 = 8;

fn iscntrl(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// The line discipline: what one terminal holds between its two sides.
/// Pure logic, no task or lock: the [`Pty`] around it does the waiting.
#[derive(Debug)]
pub struct Ldisc {
    /// The terminal's settings.
    pub termios: Termios,
    /// Complete lines (canonical mode), each with its terminator except
    /// for one ended by `VEOF` (an empty one reads as end of file).
    lines: VecDeque<Vec<u8>>,
    /// The line being edited (canonical mode).
    line: Vec<u8>,
    /// Input in non-canonical mode.
    raw: VecDeque<u8>,
    /// Output for the master side.
    pub out: VecDeque<u8>,
    /// The next character is taken literally (`VLNEXT`).
    lnext: bool,
    /// Output stopped (`VSTOP`).
    pub stopped: bool,
    /// Packet mode (`TIOCPKT`): master reads carry a status byte.
    pub packet: bool,
    /// Packet-mode status events not yet read (`TIOCPKT_FLUSHREAD`…).
    pub pkt_status: u8,
    /// Output column (for tab erase).
    column: usize,
    /// Column where the line being edited started.
    canon_column: usize,
}

impl Default for Ldisc {
    fn default() -> Self {
        Ldisc {
            termios: default_termios(),
            lines: VecDeque::new(),
            line: Vec::new(),
            raw: VecDeque::new(),
            out: VecDeque::new(),
            lnext: false,
            stopped: false,
            packet: false,
            pkt_status: 0,
            column: 0,
            canon_column: 0,
        }
    }
}

impl Ldisc {
    fn canon(&self) -> bool {
        self.termios.lflag & ICANON != 0
    }

    fn lflag(&self, f: u32) -> bool {
        self.termios.lflag & f != 0
    }

    fn iflag(&self, f: u32) -> bool {
        self.termios.iflag & f != 0
    }

    /// Whether `c` is the (enabled) control character at `idx`.
    fn is(&self, c: u8, idx: usize) -> bool {
        c != 0 && self.termios.cc[idx] == c
    }

    /// Bytes a read could return now (`FIONREAD`): complete lines in
    /// canonical mode.
    pub fn readable(&self) -> usize {
        if self.canon() {
            self.lines.iter().map(Vec::len).sum()
        } else {
            self.raw.len()
        }
    }

    /// Whether a read would not wait: a complete line, or (non-canonical)
    /// at least `VMIN` bytes (any byte when `VTIME` is set).
    pub fn read_ready(&self) -> bool {
        if self.canon() {
            !self.lines.is_empty()
        } else {
            let min = if self.termios.cc[VTIME] != 0 { 1 } else { usize::from(self.termios.cc[VMIN]).max(1) };
            self.raw.len() >= min
        }
    }

    /// Whether input has room for more from the master side.
    pub fn input_room(&self) -> bool {
        self.held() < INPUT_MAX
    }

    fn held(&self) -> usize {
        // A line ended by VEOF alone is empty: it still takes a place.
        self.lines.iter().map(|l| l.len().max(1)).sum::<usize>() + self.line.len() + self.raw.len()
    }

    /// Discards pending input (`TCIFLUSH`, a signal character).
    pub fn flush_input(&mut self) {
        if self.packet {
            self.pkt_status |= PKT_FLUSHREAD;
        }
        self.lines.clear();
        self.line.clear();
        self.raw.clear();
        self.lnext = false;
    }

    /// Discards output the master side has not read (`TCOFLUSH`).
    pub fn flush_output(&mut self) {
        if self.packet {
            self.pkt_status |= PKT_FLUSHWRITE;
        }
        self.out.clear();
    }

    /// Stops or restarts output (flow control).
    pub fn set_stopped(&mut self, stop: bool) {
        if self.stopped == stop {
            return;
        }
        self.stopped = stop;
        if self.packet {
            if stop {
                self.pkt_status = (self.pkt_status & !PKT_START) | PKT_STOP;
            } else {
                self.pkt_status = (self.pkt_status & !PKT_STOP) | PKT_START;
            }
        }
    }

    /// New settings: switching canonical mode on or off keeps pending
    /// input readable.
    pub fn set_termios(&mut self, t: Termios) {
        let was = self.canon();
        self.termios = t;
        if was && !self.canon() {
            for l in self.lines.drain(..) {
                self.raw.extend(l);
            }
            self.raw.extend(self.line.drain(..));
        } else if !was && self.canon() {
            self.line.extend(self.raw.drain(..));
        }
        if self.termios.iflag & IXON == 0 {
            self.set_stopped(false);
        }
    }

    /// One output character after `OPOST` processing, tracking the column.
    fn put_out(&mut self, c: u8) {
        let o = self.termios.oflag;
        if o & OPOST == 0 {
            self.out.push_back(c);
            return;
        }
        match c {
            b'\n' => {
                if o & ONLRET != 0 {
                    self.column = 0;
                }
                if o & ONLCR != 0 {
                    self.column = 0;
                    self.canon_column = 0;
                    self.out.extend([b'\r', b'\n']);
                    return;
                }
                self.canon_column = self.column;
            }
            b'\r' => {
                if o & ONOCR != 0 && self.column == 0 {
                    return;
                }
                if o & OCRNL != 0 {
                    if o & ONLRET != 0 {
                        self.column = 0;
                        self.canon_column = 0;
                    }
                    self.out.push_back(b'\n');
                    return;
                }
                self.column = 0;
                self.canon_column = 0;
            }
            b'\t' => {
                let spaces = 8 - (self.column & 7);
                self.column += spaces;
                if o & TABDLY == XTABS {
                    self.out.extend(std::iter::repeat_n(b' ', spaces));
                    return;
                }
            }
            0x08 => self.column = self.column.saturating_sub(1),
            c if !(iscntrl(c) || self.is_continuation(c)) => self.column += 1,
            _ => {}
        }
        self.out.push_back(c);
    }

    fn echo_room(&self) -> bool {
        self.out.len() < OUTPUT_MAX + ECHO_SLACK
    }

    /// Echoes `c` as is (through output processing).
    fn echo_raw(&mut self, c: u8) {
        if self.echo_room() {
            self.put_out(c);
        }
    }

    /// Echoes `c`, control characters as `^X` with `ECHOCTL`.
    fn echo_char(&mut self, c: u8) {
        if !self.echo_room() {
            return;
        }
        if self.lflag(ECHOCTL) && iscntrl(c) && c != b'\t' {
            self.out.extend([b'^', c ^ 0o100]);
            self.column += 2;
        } else {
            self.put_out(c);
        }
    }

    /// Text written by the replica side: all of it, after output
    /// processing.
    pub fn write(&mut self, data: &[u8]) {
        for &c in data {
            self.put_out(c);
        }
    }

    /// Takes up to `buf.len()` bytes of output for the master side.
    pub fn read_out(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.out.len());
        for (d, s) in buf.iter_mut().zip(self.out.drain(..n)) {
            *d = s;
        }
        n
    }

    /// Reads input for the replica side: one line at most in canonical
    /// mode (`None`: nothing to read yet; `Some(0)`: end of file).
    pub fn read_in(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.canon() {
            let line = self.lines.front_mut()?;
            let n = buf.len().min(line.len());
            buf[..n].copy_from_slice(&line[..n]);
            line.drain(..n);
            if line.is_empty() {
                self.lines.pop_front();
            }
            Some(n)
        } else {
            if self.raw.is_empty() {
                return None;
            }
            let n = buf.len().min(self.raw.len());
            for (d, s) in buf.iter_mut().zip(self.raw.drain(..n)) {
                *d = s;
            }
            Some(n)
        }
    }

    /// Input from the master side: processes what fits and returns how
    /// many bytes were taken; the signals (`ISIG`) to send to the
    /// foreground group are appended to `sigs`.
    pub fn receive(&mut self, data: &[u8], sigs: &mut Vec<i32>) -> usize {
        let mut taken = 0;
        for &c in data {
            if !self.input_room() {
                // A full line in canonical mode may still be ended.
                let ends = self.canon() && (c == b'\n' || c == b'\r' || self.is(c, VEOF));
                if !(self.canon() && self.lines.is_empty()) {
                    break;
                }
                if !ends && !self.iflag(IXON) && !self.lflag(ISIG) {
                    taken += 1;
                    continue;
                }
            }
            self.receive_char(c, sigs);
            taken += 1;
        }
        taken
    }

    fn receive_char(&mut self, c: u8, sigs: &mut Vec<i32>) {
        let mut c = c;
        if self.iflag(ISTRIP) {
            c &= 0x7f;
        }
        if self.lnext {
            self.lnext = false;
            if self.lflag(ECHO) {
                self.echo_char(c);
            }
            self.queue(c);
            return;
        }
        if self.iflag(IXON) {
            if self.is(c, VSTART) {
                self.set_stopped(false);
                return;
            }
            if self.is(c, VSTOP) {
                self.set_stopped(true);
                return;
            }
        }
        if self.lflag(ISIG) {
            let s = if self.is(c, VINTR) {
                sig::SIGINT
            } else if self.is(c, VQUIT) {
                sig::SIGQUIT
            } else if self.is(c, VSUSP) {
                sig::SIGTSTP
            } else {
                0
            };
            if s != 0 {
                if !self.lflag(NOFLSH) {
                    self.flush_input();
                }
                sigs.push(s);
                if self.iflag(IXON) {
                    self.set_stopped(false);
                }
                if self.lflag(ECHO) {
                    self.echo_char(c);
                }
                return;
            }
        }
        if self.stopped && self.iflag(IXON) && self.iflag(IXANY) {
            self.set_stopped(false);
        }
        if c == b'\r' {
            if self.iflag(IGNCR) {
                return;
            }
            if self.iflag(ICRNL) {
                c = b'\n';
            }
        } else if c == b'\n' && self.iflag(INLCR) {
            c = b'\r';
        }
        if self.canon() {
            let iexten = self.lflag(IEXTEN);
            if self.is(c, VERASE) || self.is(c, VKILL) || (iexten && self.is(c, VWERASE)) {
                self.erase(c);
                return;
            }
            if iexten && self.is(c, VLNEXT) {
                self.lnext = true;
                if self.lflag(ECHO) && self.lflag(ECHOCTL) {
                    self.echo_raw(b'^');
                    self.echo_raw(0x08);
                }
                return;
            }
            if iexten && self.lflag(ECHO) && self.is(c, VREPRINT) {
                self.echo_char(c);
                self.echo_raw(b'\n');
                let line = self.line.clone();
                for ch in line {
                    self.echo_char(ch);
                }
                return;
            }
            if c == b'\n' {
                if self.lflag(ECHO) || self.lflag(ECHONL) {
                    self.echo_raw(b'\n');
                }
                self.line.push(c);
                self.end_line();
                return;
            }
            if self.is(c, VEOF) {
                self.end_line();
                return;
            }
            if self.is(c, VEOL) || (iexten && self.is(c, VEOL2)) {
                if self.lflag(ECHO) {
                    if self.line.is_empty() {
                        self.canon_column = self.column;
                    }
                    self.echo_char(c);
                }
                self.line.push(c);
                self.end_line();
                return;
            }
        }
        if self.lflag(ECHO) {
            if c == b'\n' {
                self.echo_raw(b'\n');
            } else {
                if self.canon() && self.line.is_empty() {
                    self.canon_column = self.column;
                }
                self.echo_char(c);
            }
        }
        self.queue(c);
    }

    fn queue(&mut self, c: u8) {
        if self.canon() {
            if self.line.len() < INPUT_MAX {
                self.line.push(c);
            }
        } else if self.raw.len() < INPUT_MAX {
            self.raw.push_back(c);
        }
    }

    fn end_line(&mut self) {
        let l = std::mem::take(&mut self.line);
        self.lines.push_back(l);
    }

    fn is_continuation(&self, c: u8) -> bool {
        self.iflag(IUTF8) && c & 0xc0 == 0x80
    }

    /// `VERASE`, `VWERASE` or `VKILL` on the line being edited.
    fn erase(&mut self, c: u8) {
        if self.line.is_empty() {
            return;
        }
        #[derive(PartialEq)]
        enum Kill {
            Erase,
            Word,
            Line,
        }
        let kind = if self.is(c, VERASE) {
            Kill::Erase
        } else if self.is(c, VWERASE) {
            Kill::Word
        } else {
            if !self.lflag(ECHO) {
                self.line.clear();
                return;
            }
            if !self.lflag(ECHOK) || !self.lflag(ECHOKE) || !self.lflag(ECHOE) {
                self.line.clear();
                self.echo_char(c);
                if self.lflag(ECHOK) {
                    self.echo_raw(b'\n');
                }
                return;
            }
            Kill::Line
        };
        let mut seen_alnums = 0;
        while !self.line.is_empty() {
            // One character, with its UTF-8 continuation bytes.
            let mut head = self.line.len();
            let mut ch;
            loop {
                head -= 1;
                ch = self.line[head];
                if !(self.is_continuation(ch) && head > 0) {
                    break;
                }
            }
            if kind == Kill::Word {
                if ch.is_ascii_alphanumeric() || ch == b'_' {
                    seen_alnums += 1;
                } else if seen_alnums > 0 {
                    break;
                }
            }
            self.line.truncate(head);
            if self.lflag(ECHO) {
                if kind == Kill::Erase && !self.lflag(ECHOE) {
                    let e = self.termios.cc[VERASE];
                    self.echo_char(e);
                } else if ch == b'\t' {
                    self.erase_tab();
                } else {
                    if iscntrl(ch) && self.lflag(ECHOCTL) {
                        self.rub_out();
                    }
                    if !iscntrl(ch) || self.lflag(ECHOCTL) {
                        self.rub_out();
                    }
                }
            }
            if kind == Kill::Erase {
                break;
            }
        }
    }

    fn rub_out(&mut self) {
        for b in [0x08, b' ', 0x08] {
            self.echo_raw(b);
        }
    }

    /// Moves back over an erased tab: to the column the characters since
    /// the line's start (or the previous tab) leave the cursor at.
    fn erase_tab(&mut self) {
        let mut cols = 0;
        let mut after_tab = false;
        for &ch in self.line.iter().rev() {
            if ch == b'\t' {
                after_tab = true;
                break;
            } else if iscntrl(ch) {
                if self.lflag(ECHOCTL) {
                    cols += 2;
                }
            } else if !self.is_continuation(ch) {
                cols += 1;
            }
        }
        if !after_tab {
            cols += self.canon_column;
        }
        let bs = (8 - (cols & 7)).min(self.column);
        for _ in 0..bs {
            if self.echo_room() {
                self.out.push_back(0x08);
                self.column = self.column.saturating_sub(1);
            }
        }
    }
}

/// What a pair's two sides share.
#[derive(Debug)]
struct State {
    ld: Ldisc,
    winsize: Winsize,
    /// `TIOCSPTLCK`: the replica cannot be opened.
    locked: bool,
    /// Open master descriptions.
    masters: usize,
    /// Open replica descriptions.
    replicas: usize,
    /// A replica was opened once (before that, a master reader waits
    /// instead of seeing `EIO`).
    replica_opened: bool,
    /// The session it is the controlling terminal of (0: none).
    session: i32,
    /// Its foreground process group (0: none).
    pgrp: i32,
}

/// One pseudo-terminal pair.
pub struct Pty {
    /// Its number (`/dev/pts/N`).
    pub index: u32,
    kernel: Weak<Kernel>,
    devpts: Weak<Devpts>,
    node: Arc<PtsNode>,
    st: Mutex<State>,
    /// Tasks waiting on the replica side.
    rq: WaitQueue,
    /// Tasks waiting on the master side.
    mq: WaitQueue,
    /// Host bridges waiting for a change.
    cv: Condvar,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty").field("index", &self.index).finish_non_exhaustive()
    }
}

/// A sandbox's devpts: its pairs by number.
#[derive(Default)]
pub struct Devpts {
    ptys: Mutex<BTreeMap<u32, Arc<Pty>>>,
    root: std::sync::OnceLock<InodeRef>,
}

impl std::fmt::Debug for Devpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devpts").finish_non_exhaustive()
    }
}

impl Devpts {
    /// A new pair owned by `uid` (master opened once, replica locked),
    /// numbered with the lowest free number.
    pub fn allocate(self: &Arc<Self>, kernel: &Arc<Kernel>, uid: u32) -> Result<Arc<Pty>, Errno> {
        let mut m = self.ptys.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_PTYS {
            return Err(Errno::ENOSPC);
        }
        let index = (0u32..).find(|i| !m.contains_key(i)).ok_or(Errno::ENOSPC)?;
        let node = Arc::new(PtsNode {
            index,
            pty: Mutex::new(Weak::new()),
            meta: Mutex::new(Meta {
                rdev: super::dev::makedev(136 + u64::from(index >> 20), u64::from(index & 0xf_ffff)),
                ..Meta::new(mode::S_IFCHR | 0o620, DEVPTS_MAGIC).owned(uid, 5)
            }),
        });
        let pty = Arc::new(Pty {
            index,
            kernel: Arc::downgrade(kernel),
            devpts: Arc::downgrade(self),
            node: node.clone(),
            st: Mutex::new(State {
                ld: Ldisc::default(),
                winsize: Winsize::default(),
                locked: true,
                masters: 1,
                replicas: 0,
                replica_opened: false,
                session: 0,
                pgrp: 0,
            }),
            rq: WaitQueue::default(),
            mq: WaitQueue::default(),
            cv: Condvar::new(),
        });
        *node.pty.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&pty);
        m.insert(index, pty.clone());
        Ok(pty)
    }

    /// Forgets `pty` (and not a newer pair that reused its number).
    fn remove(&self, pty: &Arc<Pty>) {
        let mut m = self.ptys.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(&pty.index).is_some_and(|p| Arc::ptr_eq(p, pty)) {
            m.remove(&pty.index);
        }
    }

    /// The `/dev/pts` directory: `ptmx` and a node for each pair whose
    /// master is open.
    pub fn root(self: &Arc<Self>) -> InodeRef {
        self.root
            .get_or_init(|| {
                let me = Arc::downgrade(self);
                let ptmx: InodeRef = Arc::new(PtmxNode {
                    meta: Meta { rdev: super::dev::makedev(5, 2), ..Meta::new(mode::S_IFCHR, DEVPTS_MAGIC) },
                });
                SynthDir::new(
                    Meta::new(0o755, DEVPTS_MAGIC),
                    Box::new(move || {
                        let mut v: Vec<(Vec<u8>, InodeRef)> = vec![(b"ptmx".to_vec(), ptmx.clone())];
                        if let Some(d) = me.upgrade() {
                            let m = d.ptys.lock().unwrap_or_else(|p| p.into_inner());
                            v.extend(
                                m.values()
                                    .map(|p| (p.index.to_string().into_bytes(), p.node.clone() as InodeRef)),
                            );
                        }
                        v
                    }),
                    false,
                ) as InodeRef
            })
            .clone()
    }
}

/// `/dev/pts/N`.
pub struct PtsNode {
    index: u32,
    pty: Mutex<Weak<Pty>>,
    meta: Mutex<Meta>,
}

impl Inode for PtsNode {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        Ok(self.meta.lock().unwrap_or_else(|p| p.into_inner()).attr(1))
    }

    fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(md) = a.mode {
            m.mode = mode::S_IFCHR | (md & 0o7777);
        }
        if let Some(u) = a.uid {
            m.uid = u;
        }
        if let Some(g) = a.gid {
            m.gid = g;
        }
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(FsStats { fs_type: DEVPTS_MAGIC, bsize: 4096, namelen: 255, frsize: 4096, ..FsStats::default() })
    }

    fn cacheable(&self) -> bool {
        // Numbers are reused once a master closes.
        false
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl std::fmt::Debug for PtsNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtsNode").field("index", &self.index).finish_non_exhaustive()
    }
}

/// Which terminal device a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// `/dev/ptmx`: a new pair.
    Ptmx,
    /// `/dev/tty`: the caller's controlling terminal.
    Ctty,
    /// `/dev/console`: the sandbox's console, when it has one.
    Console,
}

/// `/dev/ptmx`, `/dev/tty` and `/dev/console`.
pub struct PtmxNode {
    meta: Meta,
}

/// A terminal device node of `/dev`.
pub struct TtyDevNode {
    meta: Meta,
    /// What it opens.
    pub device: Device,
}

impl TtyDevNode {
    /// A node for `device`.
    pub fn new(device: Device, meta: Meta) -> Arc<TtyDevNode> {
        Arc::new(TtyDevNode { meta, device })
    }
}

macro_rules! device_inode {
    ($t:ty) => {
        impl Inode for $t {
            fn attr(&self) -> Result<InodeAttr, Errno> {
                Ok(self.meta.attr(1))
            }

            fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
                Err(Errno::ENXIO)
            }

            fn statfs(&self) -> Result<FsStats, Errno> {
                Ok(FsStats {
                    fs_type: self.meta.fs_type,
                    bsize: 4096,
                    namelen: 255,
                    frsize: 4096,
                    ..FsStats::default()
                })
            }

            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
    };
}
device_inode!(PtmxNode);
device_inode!(TtyDevNode);

/// Opens a terminal device node for `t` (`None`: `inode` is no terminal
/// device). Opening a replica without `O_NOCTTY` makes it the controlling
/// terminal of a session leader that has none.
pub fn open_device(t: &Task, inode: &InodeRef, flags: u32) -> Option<Result<Box<dyn FileOps>, Errno>> {
    let any = inode.as_any();
    let pty = if any.downcast_ref::<PtmxNode>().is_some() {
        return Some(open_ptmx(t));
    } else if let Some(n) = any.downcast_ref::<PtsNode>() {
        let Some(p) = n.pty.lock().unwrap_or_else(|p| p.into_inner()).upgrade() else {
            return Some(Err(Errno::EIO));
        };
        if let Err(e) = p.open_replica() {
            return Some(Err(e));
        }
        if flags & crate::vfs::file::oflags::O_NOCTTY == 0 {
            p.acquire_on_open(t.tg());
        }
        p
    } else if let Some(n) = any.downcast_ref::<TtyDevNode>() {
        let p = match n.device {
            Device::Ctty => ctty(t.tg()),
            Device::Console => t.kernel.console.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            Device::Ptmx => return Some(open_ptmx(t)),
        };
        let Some(p) = p else { return Some(Err(Errno::ENXIO)) };
        if let Err(e) = p.open_replica_unlocked() {
            return Some(Err(e));
        }
        p
    } else {
        return None;
    };
    Some(Ok(Box::new(Replica { pty })))
}

fn open_ptmx(t: &Task) -> Result<Box<dyn FileOps>, Errno> {
    let uid = t.tg().creds().euid;
    let pty = t.kernel.devpts.allocate(&t.kernel, uid)?;
    Ok(Box::new(Master { pty }))
}

/// The controlling terminal of `tg`.
pub fn ctty(tg: &ThreadGroup) -> Option<Arc<Pty>> {
    tg.ctty.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn is_ctty_of(pty: &Arc<Pty>, tg: &ThreadGroup) -> bool {
    ctty(tg).is_some_and(|c| Arc::ptr_eq(&c, pty))
}

/// Whether `sig` is ignored or blocked by the caller (job-control
/// signals it would not notice).
fn ignores(t: &Task, signo: i32) -> bool {
    let act = t.tg().actions.lock().unwrap_or_else(|p| p.into_inner()).get(signo);
    act.handler == signal::SIG_IGN || t.sigmask() & signal::bit(signo) != 0
}

/// Whether process group `pgid` of session `sid` is orphaned: no member
/// has a parent in another group of the same session.
fn orphaned(kernel: &Kernel, pgid: i32, sid: i32) -> bool {
    !kernel.thread_groups().iter().any(|g| {
        g.pgid.load(Ordering::Relaxed) == pgid
            && g.zombie_status().is_none()
            && g.parent().is_some_and(|p| {
                p.pgid.load(Ordering::Relaxed) != pgid && p.sid.load(Ordering::Relaxed) == sid
            })
    })
}

/// Sends `signo` from the kernel to every process of group `pgid`.
fn signal_pgrp(kernel: &Kernel, pgid: i32, signo: i32) {
    signal_pgrp_with(kernel, pgid, || Siginfo::kernel(signo));
}

/// Sends `info()` to every process of group `pgid`.
fn signal_pgrp_with(kernel: &Kernel, pgid: i32, info: impl Fn() -> Siginfo) {
    if pgid <= 0 {
        return;
    }
    for g in kernel.thread_groups() {
        if g.pgid.load(Ordering::Relaxed) == pgid && g.zombie_status().is_none() {
            g.send_signal(info());
        }
    }
}

/// How a session's foreground group hears that the session lost its
/// terminal.
#[derive(Clone, Copy, Debug)]
enum Hangup {
    /// The controlling process exited: `SIGHUP` from the kernel.
    Exit,
    /// The leader gave it up (`TIOCNOTTY`): `SIGHUP` and `SIGCONT` sent
    /// by the leader (pid, uid).
    Leader(i32, u32),
    /// Taken away (`TIOCSCTTY` stealing it): no signal.
    Quiet,
}

/// The session leader `tg` ended: its controlling terminal's foreground
/// group gets `SIGHUP`, and the session loses the terminal.
pub fn leader_exited(tg: &ThreadGroup) {
    let Some(pty) = tg.ctty.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
    if tg.sid.load(Ordering::Relaxed) != tg.tgid {
        return;
    }
    pty.disassociate(tg.tgid, Hangup::Exit);
}

impl Pty {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kernel(&self) -> Option<Arc<Kernel>> {
        self.kernel.upgrade()
    }

    /// Tells everyone waiting on either side that something changed.
    fn changed(&self) {
        self.rq.notify();
        self.mq.notify();
        self.cv.notify_all();
    }

    fn open_replica(&self) -> Result<(), Errno> {
        let mut st = self.lock();
        if st.locked || st.masters == 0 {
            return Err(Errno::EIO);
        }
        st.replicas += 1;
        st.replica_opened = true;
        Ok(())
    }

    /// Opens a replica description regardless of the lock (`/dev/tty`,
    /// the console).
    fn open_replica_unlocked(&self) -> Result<(), Errno> {
        let mut st = self.lock();
        st.replicas += 1;
        st.replica_opened = true;
        Ok(())
    }

    fn acquire_on_open(self: &Arc<Self>, tg: &Arc<ThreadGroup>) {
        let sid = tg.sid.load(Ordering::Relaxed);
        if sid != tg.tgid {
            return;
        }
        let mut cur = tg.ctty.lock().unwrap_or_else(|p| p.into_inner());
        if cur.is_some() {
            return;
        }
        let mut st = self.lock();
        if st.session != 0 {
            return;
        }
        st.session = sid;
        st.pgrp = tg.pgid.load(Ordering::Relaxed);
        *cur = Some(self.clone());
    }

    /// Makes the pair the controlling terminal of `tg`'s session, with
    /// `tg`'s group in the foreground (boot's console, `TIOCSCTTY`).
    pub fn set_ctty(self: &Arc<Self>, tg: &Arc<ThreadGroup>) {
        // The process's ctty lock before the pair's (as acquire_on_open).
        let mut cur = tg.ctty.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = self.lock();
        st.session = tg.sid.load(Ordering::Relaxed);
        st.pgrp = tg.pgid.load(Ordering::Relaxed);
        *cur = Some(self.clone());
    }

    /// The session `sid` loses the terminal; its foreground group hears
    /// of it as `how` says.
    fn disassociate(self: &Arc<Self>, sid: i32, how: Hangup) {
        let pgrp = {
            let mut st = self.lock();
            if st.session != sid {
                return;
            }
            let p = st.pgrp;
            st.session = 0;
            st.pgrp = 0;
            p
        };
        let Some(k) = self.kernel() else { return };
        match how {
            Hangup::Exit => signal_pgrp(&k, pgrp, sig::SIGHUP),
            Hangup::Leader(pid, uid) => {
                for s in [sig::SIGHUP, sig::SIGCONT] {
                    signal_pgrp_with(&k, pgrp, || Siginfo::user(s, signal::code::SI_USER, pid, uid));
                }
            }
            Hangup::Quiet => {}
        }
        for g in k.thread_groups() {
            if g.sid.load(Ordering::Relaxed) == sid {
                let mut c = g.ctty.lock().unwrap_or_else(|p| p.into_inner());
                if c.as_ref().is_some_and(|c| Arc::ptr_eq(c, self)) {
                    *c = None;
                }
            }
        }
    }

    /// The master side closed for good: every process loses it as its
    /// controlling terminal, session leaders get `SIGHUP` and `SIGCONT`,
    /// replica reads see end of file and writes `EIO`.
    fn hang_up(self: &Arc<Self>) {
        {
            let mut st = self.lock();
            st.session = 0;
            st.pgrp = 0;
        }
        if let Some(k) = self.kernel() {
            for g in k.thread_groups() {
                let mine = {
                    let mut c = g.ctty.lock().unwrap_or_else(|p| p.into_inner());
                    let mine = c.as_ref().is_some_and(|c| Arc::ptr_eq(c, self));
                    if mine {
                        *c = None;
                    }
                    mine
                };
                if mine && g.sid.load(Ordering::Relaxed) == g.tgid && g.zombie_status().is_none() {
                    g.send_signal(Siginfo::kernel(sig::SIGHUP));
                    g.send_signal(Siginfo::kernel(sig::SIGCONT));
                }
            }
        }
        if let Some(d) = self.devpts.upgrade() {
            d.remove(self);
        }
        self.changed();
    }

    fn close_master(self: &Arc<Self>) {
        // Only the 1 -> 0 transition hangs up (a second close of a pair
        // already hung up must not touch a newer pair with its number).
        let last = {
            let mut st = self.lock();
            let was = st.masters;
            st.masters = was.saturating_sub(1);
            was == 1
        };
        if last {
            self.hang_up();
        }
    }

    fn close_replica(&self) {
        {
            let mut st = self.lock();
            st.replicas = st.replicas.saturating_sub(1);
        }
        self.changed();
    }

    fn hung_up(&self) -> bool {
        self.lock().masters == 0
    }

    /// Job control for a replica operation by `t` (Linux's
    /// `__tty_check_change`): a member of a background group gets `signo`
    /// and the call restarts once it may go on; `EIO` when it cannot be
    /// stopped (an orphaned group, or `SIGTTIN` ignored or blocked).
    fn check_change(self: &Arc<Self>, t: &Task, signo: i32) -> Result<(), Errno> {
        if !is_ctty_of(self, t.tg()) {
            return Ok(());
        }
        let tty_pgrp = self.lock().pgrp;
        let pgrp = t.tg().pgid.load(Ordering::Relaxed);
        if tty_pgrp == 0 || pgrp == tty_pgrp {
            return Ok(());
        }
        if ignores(t, signo) {
            return if signo == sig::SIGTTIN { Err(Errno::EIO) } else { Ok(()) };
        }
        if orphaned(&t.kernel, pgrp, t.tg().sid.load(Ordering::Relaxed)) {
            return Err(Errno::EIO);
        }
        signal_pgrp(&t.kernel, pgrp, signo);
        Err(Errno::ERESTARTSYS)
    }

    /// Input from the master side (a task's write or a host bridge):
    /// processes what fits, signals the foreground group.
    fn input(&self, data: &[u8]) -> usize {
        let mut sigs = Vec::new();
        let (n, pgrp) = {
            let mut st = self.lock();
            let n = st.ld.receive(data, &mut sigs);
            (n, st.pgrp)
        };
        if !sigs.is_empty() {
            if let Some(k) = self.kernel() {
                for s in sigs {
                    signal_pgrp(&k, pgrp, s);
                }
            }
        }
        if n > 0 {
            self.changed();
        }
        n
    }

    /// Sets the window size (`TIOCSWINSZ`, or the host's terminal for a
    /// console): `SIGWINCH` to the foreground group when it changed.
    pub fn resize(&self, w: Winsize) {
        let (changed, pgrp) = {
            let mut st = self.lock();
            let changed = st.winsize != w;
            st.winsize = w;
            (changed, st.pgrp)
        };
        if changed {
            if let Some(k) = self.kernel() {
                signal_pgrp(&k, pgrp, sig::SIGWINCH);
            }
        }
    }

    /// Host side: input from the host terminal; waits while the line
    /// discipline is full. Returns `false` once the pair is hung up.
    pub fn bridge_input(&self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let n = self.input(data);
            data = &data[n..];
            if data.is_empty() {
                break;
            }
            let st = self.lock();
            if st.masters == 0 {
                return false;
            }
            if !st.ld.input_room() {
                let _ = self.cv.wait_timeout(st, Duration::from_millis(100));
            }
        }
        true
    }

    /// Host side: waits (up to `timeout`) for output for the host
    /// terminal; `false` when no replica is open any more and nothing is
    /// left.
    pub fn bridge_wait_output(&self, timeout: Duration) -> bool {
        let st = self.lock();
        if st.ld.out.is_empty() {
            if st.replica_opened && st.replicas == 0 {
                return false;
            }
            drop(self.cv.wait_timeout(st, timeout).unwrap_or_else(|p| p.into_inner()));
        }
        true
    }

    /// Host side: takes output for the host terminal.
    pub fn bridge_take_output(&self, buf: &mut [u8]) -> usize {
        let n = self.lock().ld.read_out(buf);
        if n > 0 {
            self.changed();
        }
        n
    }

    /// Host side: the host terminal is gone.
    pub fn bridge_closed(self: &Arc<Self>) {
        self.close_master();
    }

    /// Output not yet taken by the master side.
    pub fn pending_output(&self) -> usize {
        self.lock().ld.out.len()
    }

    /// A replica description for boot's console.
    pub fn console_replica(self: &Arc<Self>) -> Box<dyn FileOps> {
        let _ = self.open_replica_unlocked();
        Box::new(Replica { pty: self.clone() })
    }

    /// Unlocks the replica (a console is born unlocked).
    pub fn unlock(&self) {
        self.lock().locked = false;
    }

    fn replica_read(self: &Arc<Self>, t: &Task, file: &File, buf: &mut [u8]) -> Result<usize, Errno> {
        self.check_change(t, sig::SIGTTIN)?;
        if buf.is_empty() || self.hung_up() {
            return Ok(0);
        }
        let nonblock = file.nonblocking();
        let _reg = (!nonblock).then(|| self.rq.register(&t.shared, events::IN));
        let (canon, vmin, vtime) = {
            let st = self.lock();
            (st.ld.canon(), st.ld.termios.cc[VMIN], st.ld.termios.cc[VTIME])
        };
        let tenth = Duration::from_millis(100);
        // Non-canonical: VMIN bytes, VTIME tenths of a second.
        let mut deadline =
            (!canon && vtime != 0 && vmin == 0).then(|| Instant::now() + tenth * u32::from(vtime));
        let mut got = 0;
        loop {
            {
                let mut st = self.lock();
                if let Some(n) = st.ld.read_in(&mut buf[got..]) {
                    drop(st);
                    self.changed();
                    if canon {
                        return Ok(n);
                    }
                    got += n;
                    let want = usize::from(vmin).min(buf.len());
                    if got >= want || vmin == 0 || got == buf.len() {
                        return Ok(got);
                    }
                    if vtime != 0 {
                        // Inter-byte timer, restarted by each byte.
                        deadline = Some(Instant::now() + tenth * u32::from(vtime));
                    }
                    continue;
                }
                if st.masters == 0 {
                    return Ok(got);
                }
                if !canon && vmin == 0 && vtime == 0 {
                    return Ok(got);
                }
            }
            if nonblock {
                return if got > 0 { Ok(got) } else { Err(Errno::EAGAIN) };
            }
            match t.wait_kick(deadline) {
                Ok(true) => {}
                Ok(false) => return Ok(got),
                Err(_) if got > 0 => return Ok(got),
                Err(_) => return Err(Errno::ERESTARTSYS),
            }
        }
    }

    fn replica_write(self: &Arc<Self>, t: &Task, file: &File, data: &[u8]) -> Result<usize, Errno> {
        if self.lock().ld.termios.lflag & TOSTOP != 0 {
            self.check_change(t, sig::SIGTTOU)?;
        }
        if data.is_empty() {
            return Ok(0);
        }
        let nonblock = file.nonblocking();
        let _reg = (!nonblock).then(|| self.rq.register(&t.shared, events::OUT));
        let mut done = 0;
        loop {
            {
                let mut st = self.lock();
                if st.masters == 0 {
                    return if done > 0 { Ok(done) } else { Err(Errno::EIO) };
                }
                if !st.ld.stopped && st.ld.out.len() < OUTPUT_MAX {
                    let k = (OUTPUT_MAX - st.ld.out.len()).min(data.len() - done);
                    st.ld.write(&data[done..done + k]);
                    done += k;
                    drop(st);
                    self.changed();
                    if done == data.len() {
                        return Ok(done);
                    }
                    continue;
                }
            }
            if nonblock {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            if t.wait_kick(None).is_err() {
                return if done > 0 { Ok(done) } else { Err(Errno::ERESTARTSYS) };
            }
        }
    }

    fn master_read(&self, t: &Task, file: &File, buf: &mut [u8]) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let nonblock = file.nonblocking();
        let _reg = (!nonblock).then(|| self.mq.register(&t.shared, events::IN));
        loop {
            {
                let mut st = self.lock();
                if st.ld.packet && st.ld.pkt_status != 0 {
                    buf[0] = std::mem::take(&mut st.ld.pkt_status);
                    return Ok(1);
                }
                let n = if st.ld.packet && !st.ld.out.is_empty() {
                    buf[0] = 0;
                    1 + st.ld.read_out(&mut buf[1..])
                } else {
                    st.ld.read_out(buf)
                };
                if n > 0 {
                    drop(st);
                    self.changed();
                    return Ok(n);
                }
                if st.replica_opened && st.replicas == 0 {
                    return Err(Errno::EIO);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    fn master_write(&self, t: &Task, file: &File, data: &[u8]) -> Result<usize, Errno> {
        if data.is_empty() {
            return Ok(0);
        }
        let nonblock = file.nonblocking();
        let _reg = (!nonblock).then(|| self.mq.register(&t.shared, events::OUT));
        let mut done = 0;
        loop {
            done += self.input(&data[done..]);
            if done == data.len() {
                return Ok(done);
            }
            if nonblock {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            if t.wait_kick(None).is_err() {
                return if done > 0 { Ok(done) } else { Err(Errno::ERESTARTSYS) };
            }
        }
    }

    fn replica_readiness(&self, mask: u32) -> u32 {
        let st = self.lock();
        if st.masters == 0 {
            return mask
                & (events::IN | events::OUT | events::ERR | events::HUP | events::RDNORM | events::WRNORM)
                | (events::ERR | events::HUP);
        }
        let mut r = 0;
        if st.ld.read_ready() {
            r |= events::IN | events::RDNORM;
        }
        if st.ld.out.len() < OUTPUT_MAX && !st.ld.stopped {
            r |= events::OUT | events::WRNORM;
        }
        r & mask
    }

    fn master_readiness(&self, mask: u32) -> u32 {
        let st = self.lock();
        let mut r = 0;
        if !st.ld.out.is_empty() {
            r |= events::IN | events::RDNORM;
        }
        if st.ld.packet && st.ld.pkt_status != 0 {
            r |= events::IN | events::RDNORM | events::PRI;
        }
        if st.ld.input_room() {
            r |= events::OUT | events::WRNORM;
        }
        if st.replica_opened && st.replicas == 0 {
            r |= events::HUP;
        }
        (r & mask) | (r & events::HUP)
    }

    /// The ioctls both sides answer (`master`: asked of the master side,
    /// which sees the replica's settings and skips job control).
    fn ioctl(self: &Arc<Self>, t: &Task, master: bool, cmd: u32, arg: u64) -> Result<u64, Errno> {
        if !master && self.hung_up() && cmd != nr::TIOCNOTTY {
            return Err(Errno::EIO);
        }
        let check = |s: &Arc<Self>| if master { Ok(()) } else { s.check_change(t, sig::SIGTTOU) };
        match cmd {
            nr::TCGETS => {
                let tio = self.lock().ld.termios;
                t.mm.write_obj(arg, &tio)?;
                Ok(0)
            }
            nr::TCGETS2 => {
                let tio = self.lock().ld.termios;
                t.mm.write_obj(arg, &tio)?;
                t.mm.write_obj(arg.checked_add(36).ok_or(Errno::EFAULT)?, &[38_400u32, 38_400u32])?;
                Ok(0)
            }
            nr::TCSETS | nr::TCSETSW | nr::TCSETSF | nr::TCSETS2 => {
                let tio: Termios = t.mm.read_obj(arg)?;
                check(self)?;
                let mut st = self.lock();
                if cmd == nr::TCSETSF {
                    st.ld.flush_input();
                }
                st.ld.set_termios(tio);
                drop(st);
                self.changed();
                Ok(0)
            }
            nr::TIOCGWINSZ => {
                let w = self.lock().winsize;
                t.mm.write_obj(arg, &w)?;
                Ok(0)
            }
            nr::TIOCSWINSZ => {
                let w: Winsize = t.mm.read_obj(arg)?;
                self.resize(w);
                Ok(0)
            }
            nr::FIONREAD => {
                let n = if master { self.lock().ld.out.len() } else { self.lock().ld.readable() };
                t.mm.write_obj(arg, &i32::try_from(n).unwrap_or(i32::MAX))?;
                Ok(0)
            }
            nr::TIOCOUTQ => {
                // A pty replica's driver holds nothing (Linux says 0 even
                // before the master has read).
                let n = 0usize;
                t.mm.write_obj(arg, &i32::try_from(n).unwrap_or(i32::MAX))?;
                Ok(0)
            }
            nr::TCFLSH => {
                check(self)?;
                let mut st = self.lock();
                match (arg, master) {
                    // The master's "input" is the replica's output.
                    (0, false) | (1, true) => st.ld.flush_input(),
                    (1, false) | (0, true) => st.ld.flush_output(),
                    (2, _) => {
                        st.ld.flush_input();
                        st.ld.flush_output();
                    }
                    _ => return Err(Errno::EINVAL),
                }
                drop(st);
                self.changed();
                Ok(0)
            }
            nr::TCSBRK | nr::TCSBRKP => {
                check(self)?;
                Ok(0)
            }
            nr::TCXONC => {
                check(self)?;
                let mut st = self.lock();
                match arg {
                    0 => st.ld.set_stopped(true),
                    1 => st.ld.set_stopped(false),
                    2 | 3 => {}
                    _ => return Err(Errno::EINVAL),
                }
                drop(st);
                self.changed();
                Ok(0)
            }
            nr::TIOCGPGRP => {
                if !master && !is_ctty_of(self, t.tg()) {
                    return Err(Errno::ENOTTY);
                }
                let p = self.lock().pgrp;
                t.mm.write_obj(arg, &p)?;
                Ok(0)
            }
            nr::TIOCSPGRP => {
                if master || !is_ctty_of(self, t.tg()) {
                    return Err(Errno::ENOTTY);
                }
                // (Linux turns the orphaned group's EIO into ENOTTY here.)
                check(self).map_err(|e| if e == Errno::EIO { Errno::ENOTTY } else { e })?;
                let pgrp: i32 = t.mm.read_obj(arg)?;
                if pgrp < 0 {
                    return Err(Errno::EINVAL);
                }
                let sid = t.tg().sid.load(Ordering::Relaxed);
                let members: Vec<_> = t
                    .kernel
                    .thread_groups()
                    .into_iter()
                    .filter(|g| g.pgid.load(Ordering::Relaxed) == pgrp)
                    .collect();
                if members.is_empty() {
                    return Err(Errno::ESRCH);
                }
                if !members.iter().any(|g| g.sid.load(Ordering::Relaxed) == sid) {
                    return Err(Errno::EPERM);
                }
                let mut st = self.lock();
                if st.session != sid {
                    return Err(Errno::ENOTTY);
                }
                st.pgrp = pgrp;
                Ok(0)
            }
            nr::TIOCGSID => {
                if !master && !is_ctty_of(self, t.tg()) {
                    return Err(Errno::ENOTTY);
                }
                let s = self.lock().session;
                if s == 0 {
                    return Err(Errno::ENOTTY);
                }
                t.mm.write_obj(arg, &s)?;
                Ok(0)
            }
            nr::TIOCSCTTY => {
                let tg = t.tg();
                let sid = tg.sid.load(Ordering::Relaxed);
                if is_ctty_of(self, tg) {
                    return Ok(0);
                }
                if sid != tg.tgid || ctty(tg).is_some() {
                    return Err(Errno::EPERM);
                }
                let owner = self.lock().session;
                if owner != 0 {
                    // Stealing it from another session: CAP_SYS_ADMIN and
                    // an argument of 1.
                    if arg != 1 || !tg.creds().capable(crate::kernel::creds::CAP_SYS_ADMIN) {
                        return Err(Errno::EPERM);
                    }
                    self.disassociate(owner, Hangup::Quiet);
                }
                self.set_ctty(tg);
                Ok(0)
            }
            nr::TIOCNOTTY => {
                let tg = t.tg();
                if master || !is_ctty_of(self, tg) {
                    return Err(Errno::ENOTTY);
                }
                if tg.sid.load(Ordering::Relaxed) == tg.tgid {
                    self.disassociate(tg.tgid, Hangup::Leader(tg.tgid, tg.creds().ruid));
                } else {
                    *tg.ctty.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Ok(0)
            }
            nr::TIOCGPTN if master => {
                t.mm.write_obj(arg, &self.index)?;
                Ok(0)
            }
            nr::TIOCSPTLCK if master => {
                let v: i32 = t.mm.read_obj(arg)?;
                self.lock().locked = v != 0;
                Ok(0)
            }
            nr::TIOCGPTLCK if master => {
                let v = i32::from(self.lock().locked);
                t.mm.write_obj(arg, &v)?;
                Ok(0)
            }
            nr::TIOCSIG if master => {
                let s = i32::try_from(arg).map_err(|_| Errno::EINVAL)?;
                if !signal::valid(s) {
                    return Err(Errno::EINVAL);
                }
                let pgrp = self.lock().pgrp;
                signal_pgrp(&t.kernel, pgrp, s);
                Ok(0)
            }
            nr::TIOCGPTPEER if master => {
                use crate::vfs::file::oflags::{O_ACCMODE, O_CLOEXEC, O_NOCTTY, O_NONBLOCK};
                let flags = u32::try_from(arg).map_err(|_| Errno::EINVAL)?;
                if flags & !(O_ACCMODE | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) != 0 {
                    return Err(Errno::EINVAL);
                }
                self.open_replica()?;
                if flags & O_NOCTTY == 0 {
                    self.acquire_on_open(t.tg());
                }
                let f = File::new(Box::new(Replica { pty: self.clone() }), flags & (O_ACCMODE | O_NONBLOCK));
                let limit = usize::try_from(t.tg().rlimit(7).cur).unwrap_or(usize::MAX);
                let fd = t.fds.install(f, flags & O_CLOEXEC != 0, 0, limit.min(crate::vfs::NR_OPEN))?;
                Ok(u64::try_from(fd).unwrap_or(0))
            }
            nr::TIOCPKT if master => {
                let on: i32 = t.mm.read_obj(arg)?;
                let mut st = self.lock();
                if on != 0 && !st.ld.packet {
                    st.ld.pkt_status = 0;
                }
                st.ld.packet = on != 0;
                Ok(0)
            }
            nr::TIOCGPKT if master => {
                let on = i32::from(self.lock().ld.packet);
                t.mm.write_obj(arg, &on)?;
                Ok(0)
            }
            nr::TIOCGETD => {
                t.mm.write_obj(arg, &0i32)?;
                Ok(0)
            }
            nr::TIOCSETD => {
                let d: i32 = t.mm.read_obj(arg)?;
                if d == 0 {
                    Ok(0)
                } else {
                    Err(Errno::EINVAL)
                }
            }
            nr::TIOCEXCL | nr::TIOCNXCL => Ok(0),
            _ => Err(Errno::ENOTTY),
        }
    }
}

/// The master side of a pair.
struct Master {
    pty: Arc<Pty>,
}

impl Drop for Master {
    fn drop(&mut self) {
        self.pty.close_master();
    }
}

impl FileOps for Master {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() {
            return Err(Errno::ESPIPE);
        }
        self.pty.master_read(t, f, buf)
    }

    fn write(&self, t: &Task, f: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() {
            return Err(Errno::ESPIPE);
        }
        self.pty.master_write(t, f, data)
    }

    fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        self.pty.ioctl(t, true, cmd, arg)
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        self.pty.master_readiness(mask)
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.mq)
    }

    fn link_name(&self) -> Option<String> {
        Some("/dev/ptmx".into())
    }
}

/// The replica side of a pair.
struct Replica {
    pty: Arc<Pty>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.pty.close_replica();
    }
}

impl FileOps for Replica {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() {
            return Err(Errno::ESPIPE);
        }
        self.pty.replica_read(t, f, buf)
    }

    fn write(&self, t: &Task, f: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() {
            return Err(Errno::ESPIPE);
        }
        self.pty.replica_write(t, f, data)
    }

    fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        self.pty.ioctl(t, false, cmd, arg)
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        self.pty.replica_readiness(mask)
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.rq)
    }

    fn stat(&self) -> Result<rvisor_syscalls::abi::Stat, Errno> {
        Ok(self.pty.node.attr()?.to_stat())
    }

    fn link_name(&self) -> Option<String> {
        Some(format!("/dev/pts/{}", self.pty.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ld: &mut Ldisc, s: &[u8]) -> Vec<i32> {
        let mut sigs = Vec::new();
        assert_eq!(ld.receive(s, &mut sigs), s.len());
        sigs
    }

    fn out(ld: &mut Ldisc) -> Vec<u8> {
        ld.out.drain(..).collect()
    }

    fn read(ld: &mut Ldisc) -> Option<Vec<u8>> {
        let mut b = [0u8; 64];
        ld.read_in(&mut b).map(|n| b[..n].to_vec())
    }

    #[test]
    fn canonical_lines_echo_and_edit() {
        let mut ld = Ldisc::default();
        feed(&mut ld, b"abx\x7fc");
        assert!(read(&mut ld).is_none(), "no line yet");
        feed(&mut ld, b"\r");
        assert_eq!(read(&mut ld).as_deref(), Some(&b"abc\n"[..]));
        assert_eq!(out(&mut ld), b"abx\x08 \x08c\r\n");
        feed(&mut ld, b"junk\x15ok\x04");
        assert_eq!(read(&mut ld).as_deref(), Some(&b"ok"[..]));
        feed(&mut ld, b"\x04");
        assert_eq!(read(&mut ld).as_deref(), Some(&b""[..]), "end of file");
    }

    #[test]
    fn word_erase_and_literal_next() {
        let mut ld = Ldisc::default();
        feed(&mut ld, b"one two  \x17x\x16\x03\n");
        assert_eq!(read(&mut ld).as_deref(), Some(&b"one x\x03\n"[..]));
    }

    #[test]
    fn signal_characters_flush_and_echo() {
        let mut ld = Ldisc::default();
        let sigs = feed(&mut ld, b"partial\x03");
        assert_eq!(sigs, vec![sig::SIGINT]);
        assert_eq!(out(&mut ld), b"partial^C");
        feed(&mut ld, b"\n");
        assert_eq!(read(&mut ld).as_deref(), Some(&b"\n"[..]), "the partial line was flushed");
        assert_eq!(feed(&mut ld, b"\x1c\x1a"), vec![sig::SIGQUIT, sig::SIGTSTP]);
    }

    #[test]
    fn raw_mode_and_output_processing() {
        let mut ld = Ldisc::default();
        let mut t = default_termios();
        t.lflag &= !(ICANON | ECHO | ISIG);
        ld.set_termios(t);
        feed(&mut ld, b"\x03\r");
        assert_eq!(read(&mut ld).as_deref(), Some(&b"\x03\n"[..]));
        ld.write(b"a\nb\tc");
        assert_eq!(out(&mut ld), b"a\r\nb\tc");
        t.oflag &= !OPOST;
        ld.set_termios(t);
        ld.write(b"x\n");
        assert_eq!(out(&mut ld), b"x\n");
    }

    #[test]
    fn input_is_bounded() {
        let mut ld = Ldisc::default();
        let mut t = default_termios();
        t.lflag &= !ICANON;
        ld.set_termios(t);
        let big = vec![b'a'; 10_000];
        let mut sigs = Vec::new();
        assert_eq!(ld.receive(&big, &mut sigs), INPUT_MAX);
        assert!(!ld.input_room());
    }

    #[test]
    fn flow_control_characters() {
        let mut ld = Ldisc::default();
        feed(&mut ld, b"\x13");
        assert!(ld.stopped);
        feed(&mut ld, b"\x11");
        assert!(!ld.stopped);
        assert!(out(&mut ld).is_empty());
    }
}
