//! Signal delivery: at each return to the application, pending signals the
//! task does not block are taken; an interrupted system call is restarted
//! or fails with `EINTR`; a handler gets a Linux `rt_sigframe` (return
//! address, `ucontext` with the registers, mask and alternate stack,
//! `siginfo`, and the XSAVE state after it) and `rt_sigreturn` takes it
//! back, changing only what Linux lets a forged frame change.

use rvisor_platform::FpState;
use rvisor_syscalls::abi::{KernelSigaction, StackT};
use rvisor_syscalls::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::signal::{self, default_action, sig, DefaultAction, Siginfo, SA_NODEFER, SA_ONSTACK};
use super::signal::{SA_RESETHAND, SA_RESTART, SA_RESTORER, SIG_DFL, SIG_IGN};
use super::{ExitStatus, Task};

/// `struct sigcontext` (x86_64).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Sigcontext {
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rax: u64,
    rcx: u64,
    rsp: u64,
    rip: u64,
    eflags: u64,
    cs: u16,
    gs: u16,
    fs: u16,
    ss: u16,
    err: u64,
    trapno: u64,
    oldmask: u64,
    cr2: u64,
    fpstate: u64,
    reserved: [u64; 8],
}

/// The kernel's `struct ucontext` (x86_64).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Ucontext {
    flags: u64,
    link: u64,
    stack: StackT,
    mcontext: Sigcontext,
    sigmask: u64,
}

/// `struct rt_sigframe`: the return address, then the context and info.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RtSigframe {
    pretcode: u64,
    uc: Ucontext,
    info: Siginfo,
}

const _: () = assert!(std::mem::size_of::<Sigcontext>() == 256);
const _: () = assert!(std::mem::size_of::<Ucontext>() == 304);
const _: () = assert!(std::mem::size_of::<RtSigframe>() == 440);

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// `FP_XSTATE_MAGIC1`, in the FXSAVE area's software-reserved bytes.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// `FP_XSTATE_MAGIC2`, right after the XSAVE area.
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of the software-reserved bytes in the FXSAVE area.
const SW_RESERVED: usize = 464;
/// `eflags` bits a signal frame may change (`FIX_EFLAGS`).
const FIX_EFLAGS: u64 = 0x50dd5;
/// `eflags` bits cleared for a handler: DF, TF, RF.
const HANDLER_CLEARS: u64 = 0x400 | 0x100 | 0x10000;
/// The x86_64 red zone below the stack pointer.
const RED_ZONE: u64 = 128;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const SS_AUTODISARM: i32 = 1 << 31;
/// The smallest alternate stack `sigaltstack` accepts.
const MINSIGSTKSZ: u64 = 2048;

/// No alternate signal stack (a new task's, and a new thread's).
pub const NO_ALTSTACK: StackT = StackT { sp: 0, flags: SS_DISABLE, pad: 0, size: 0 };
const USER_CS: u64 = 0x33;
/// `restart_syscall`.
const SYS_RESTART_SYSCALL: u64 = 219;
const USER_SS: u64 = 0x2b;

/// What the default action of a signal does to the process.
fn fatal_status(signo: i32) -> Option<ExitStatus> {
    match default_action(signo) {
        DefaultAction::Terminate => Some(ExitStatus::Signal { sig: signo, core: false }),
        DefaultAction::Core => Some(ExitStatus::Signal { sig: signo, core: true }),
        // Job control (stop, continue) comes with the signals issue:
        // stops are ignored.
        DefaultAction::Stop | DefaultAction::Continue | DefaultAction::Ignore => None,
    }
}

impl Task {
    /// Whether `sp` is on the alternate stack (Linux's `on_sig_stack`:
    /// never, with `SS_AUTODISARM`, so that handlers can nest on it).
    fn on_altstack(&self, sp: u64) -> bool {
        let a = self.altstack;
        a.flags & SS_AUTODISARM == 0 && sp > a.sp && sp - a.sp <= a.size
    }

    /// `sas_ss_flags`: the alternate stack's state seen from `sp`.
    fn altstack_state(&self, sp: u64) -> i32 {
        if self.altstack.size == 0 {
            SS_DISABLE
        } else if self.on_altstack(sp) {
            SS_ONSTACK
        } else {
            0
        }
    }

    /// `sigaltstack` at stack pointer `sp`: returns the old stack as the
    /// application sees it and installs `new` if given. A stack cannot be
    /// changed while running on it (`EPERM`).
    pub fn set_altstack(&mut self, new: Option<StackT>, sp: u64) -> Result<StackT, Errno> {
        let cur = self.altstack;
        let old = StackT { flags: self.altstack_state(sp) | (cur.flags & SS_AUTODISARM), pad: 0, ..cur };
        if let Some(n) = new {
            if self.on_altstack(sp) {
                return Err(Errno::EPERM);
            }
            let mode = n.flags & !SS_AUTODISARM;
            if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
                return Err(Errno::EINVAL);
            }
            self.altstack = if mode == SS_DISABLE {
                StackT { sp: 0, flags: n.flags, pad: 0, size: 0 }
            } else if n.size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            } else {
                StackT { pad: 0, ..n }
            };
        }
        Ok(old)
    }

    /// Linux's `is_current_pgrp_orphaned`: no process of this process
    /// group has a parent in another group of the same session.
    fn pgrp_orphaned(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let tg = &self.shared.tg;
        let (pgid, sid) = (tg.pgid.load(Relaxed), tg.sid.load(Relaxed));
        !self.kernel.thread_groups().iter().filter(|g| g.pgid.load(Relaxed) == pgid).any(|g| {
            g.zombie_status().is_none()
                && g.parent().is_some_and(|p| p.pgid.load(Relaxed) != pgid && p.sid.load(Relaxed) == sid)
        })
    }

    /// The next signal to deliver: this thread's own first, then the
    /// process's.
    fn next_signal(&self) -> Option<Siginfo> {
        let allowed = !self.sigmask();
        let mut info = self.shared.take_signal(allowed).or_else(|| self.shared.tg.take_signal(allowed))?;
        super::timers::delivered(&self.shared.tg, &mut info);
        Some(info)
    }

    fn restart_syscall(&mut self) {
        self.arch.regs.rax = self.arch.regs.orig_rax;
        self.arch.regs.rip = self.arch.regs.rip.wrapping_sub(2);
    }

    /// Delivers what is pending, at a return to the application.
    pub fn deliver_signals(&mut self) {
        self.park_while_stopped();
        if self.restart.is_none() && self.saved_mask.is_none() && !self.signal_pending() {
            return;
        }
        let mut restart = self.restart.take();
        let mut handled = false;
        while let Some(info) = self.next_signal() {
            let signo = info.signo;
            let act = {
                let mut acts = self.shared.tg.actions.lock().unwrap_or_else(|p| p.into_inner());
                let act = acts.get(signo);
                if act.handler != SIG_DFL && act.handler != SIG_IGN && act.flags & SA_RESETHAND != 0 {
                    acts.set(signo, KernelSigaction::default());
                }
                act
            };
            if act.handler == SIG_IGN {
                continue;
            }
            if act.handler == SIG_DFL && default_action(signo) == DefaultAction::Stop {
                // Job control: SIGTSTP, SIGTTIN and SIGTTOU do nothing to
                // an orphaned process group (no one could continue it).
                if signo == sig::SIGSTOP || !self.pgrp_orphaned() {
                    self.shared.tg.group_stop(signo);
                    self.park_while_stopped();
                }
                continue;
            }
            if act.handler == SIG_DFL {
                if let Some(status) = fatal_status(signo) {
                    tracing::debug!(tid = self.tid(), signo, "fatal signal");
                    self.shared.tg.begin_exit(status);
                    return;
                }
                continue;
            }
            // A handler: the interrupted call first.
            if let Some(code) = restart.take() {
                let again = code == Errno::ERESTARTNOINTR
                    || (code == Errno::ERESTARTSYS && act.flags & SA_RESTART != 0);
                if again {
                    self.restart_syscall();
                } else {
                    self.arch.regs.rax = Errno::EINTR.to_ret();
                    self.restart_block = None;
                }
            }
            if self.setup_frame(&info, &act).is_err() {
                // Linux's force_sigsegv: the handler cannot run.
                tracing::debug!(tid = self.tid(), signo, "signal frame could not be written");
                self.shared.tg.begin_exit(ExitStatus::Signal { sig: sig::SIGSEGV, core: true });
                return;
            }
            handled = true;
        }
        if let Some(code) = restart {
            // No handler ran: the call goes on where it was; a sleep goes
            // on through restart_syscall, until its first deadline.
            self.restart_syscall();
            if code == Errno::ERESTART_RESTARTBLOCK {
                self.arch.regs.rax = SYS_RESTART_SYSCALL;
            }
        }
        if !handled {
            if let Some(m) = self.saved_mask.take() {
                self.set_sigmask(m);
            }
        }
    }

    /// Writes a signal frame for `info` and points the registers at the
    /// handler.
    fn setup_frame(&mut self, info: &Siginfo, act: &KernelSigaction) -> Result<(), Errno> {
        if act.flags & SA_RESTORER == 0 {
            // x86_64 handlers return through sa_restorer.
            return Err(Errno::EFAULT);
        }
        self.ctx.fetch_fp(&mut self.arch).map_err(|_| Errno::EFAULT)?;
        let regs = self.arch.regs;
        let old_mask = self.saved_mask.take().unwrap_or(self.sigmask());
        let alt = self.altstack;
        let use_alt = act.flags & SA_ONSTACK != 0 && self.altstack_state(regs.rsp) == 0;
        let mut sp = if use_alt { alt.sp.wrapping_add(alt.size) } else { regs.rsp.wrapping_sub(RED_ZONE) };
        // The XSAVE area (64-byte aligned) and its trailing magic.
        let mut fp = self.arch.fp.bytes().to_vec();
        let xsize = fp.len() as u64;
        sp = sp.checked_sub(xsize + 4).ok_or(Errno::EFAULT)? & !63;
        let fp_addr = sp;
        if fp.len() >= SW_RESERVED + 16 {
            let had = u32::from_le_bytes(fp[SW_RESERVED..SW_RESERVED + 4].try_into().unwrap_or([0; 4]));
            let xfeatures = if had == FP_XSTATE_MAGIC1 {
                u64::from_le_bytes(fp[SW_RESERVED + 8..SW_RESERVED + 16].try_into().unwrap_or([0; 8]))
            } else {
                rvisor_platform::arch::enabled_xfeatures()
            };
            let xs = u32::try_from(xsize).unwrap_or(0);
            fp[SW_RESERVED..SW_RESERVED + 48].fill(0);
            fp[SW_RESERVED..SW_RESERVED + 4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
            fp[SW_RESERVED + 4..SW_RESERVED + 8].copy_from_slice(&(xs + 4).to_le_bytes());
            fp[SW_RESERVED + 8..SW_RESERVED + 16].copy_from_slice(&xfeatures.to_le_bytes());
            fp[SW_RESERVED + 16..SW_RESERVED + 20].copy_from_slice(&xs.to_le_bytes());
        }
        fp.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
        // The frame below it, so that the handler starts as if called
        // (rsp + 8 aligned to 16).
        let size = std::mem::size_of::<RtSigframe>() as u64;
        sp = (sp.checked_sub(size).ok_or(Errno::EFAULT)? & !15) - 8;
        let is_fault =
            matches!(info.signo, sig::SIGSEGV | sig::SIGBUS | sig::SIGILL | sig::SIGFPE | sig::SIGTRAP);
        let frame = RtSigframe {
            pretcode: act.restorer,
            uc: Ucontext {
                flags: UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
                link: 0,
                // As Linux's __save_altstack: the stack as set, so that
                // rt_sigreturn re-arms an auto-disarmed one.
                stack: StackT { pad: 0, ..alt },
                mcontext: Sigcontext {
                    r8: regs.r8,
                    r9: regs.r9,
                    r10: regs.r10,
                    r11: regs.r11,
                    r12: regs.r12,
                    r13: regs.r13,
                    r14: regs.r14,
                    r15: regs.r15,
                    rdi: regs.rdi,
                    rsi: regs.rsi,
                    rbp: regs.rbp,
                    rbx: regs.rbx,
                    rdx: regs.rdx,
                    rax: regs.rax,
                    rcx: regs.rcx,
                    rsp: regs.rsp,
                    rip: regs.rip,
                    eflags: regs.eflags,
                    cs: u16::try_from(regs.cs).unwrap_or(0x33),
                    gs: 0,
                    fs: 0,
                    ss: u16::try_from(regs.ss).unwrap_or(0x2b),
                    err: 0,
                    trapno: 0,
                    oldmask: old_mask,
                    cr2: if is_fault { info.fields[0] } else { 0 },
                    fpstate: fp_addr,
                    reserved: [0; 8],
                },
                sigmask: old_mask,
            },
            info: *info,
        };
        self.mm.copy_out(fp_addr, &fp)?;
        self.mm.copy_out(sp, frame.as_bytes())?;
        if alt.flags & SS_AUTODISARM != 0 {
            self.altstack = NO_ALTSTACK;
        }
        let r = &mut self.arch.regs;
        r.rdi = u64::from(info.signo.cast_unsigned());
        r.rsi = sp + 8 + std::mem::size_of::<Ucontext>() as u64;
        r.rdx = sp + 8;
        r.rax = 0;
        r.rsp = sp;
        r.rip = act.handler;
        r.eflags &= !HANDLER_CLEARS;
        r.cs = USER_CS;
        r.ss = USER_SS;
        // The handler starts with a clean FPU.
        self.arch.fp = FpState::initial();
        let mut mask = self.sigmask() | act.mask;
        if act.flags & SA_NODEFER == 0 {
            mask |= signal::bit(info.signo);
        }
        self.set_sigmask(mask);
        Ok(())
    }

    /// `rt_sigreturn`: the registers, mask, alternate stack and FP state
    /// of the frame below the stack pointer come back.
    pub fn sigreturn(&mut self) -> Result<u64, Errno> {
        let uc_addr = self.arch.regs.rsp;
        let uc: Ucontext = match self.mm.read_obj(uc_addr) {
            Ok(uc) => uc,
            Err(e) => {
                self.bad_frame();
                return Err(e);
            }
        };
        let m = uc.mcontext;
        let mut fp = FpState::initial();
        if m.fpstate != 0 {
            let mut bytes = vec![0u8; self.arch.fp.bytes().len()];
            if self.mm.copy_in(m.fpstate, &mut bytes).is_err() {
                self.bad_frame();
                return Err(Errno::EFAULT);
            }
            sanitize_xstate(&mut bytes);
            fp.bytes_mut().copy_from_slice(&bytes);
        }
        let r = &mut self.arch.regs;
        r.r8 = m.r8;
        r.r9 = m.r9;
        r.r10 = m.r10;
        r.r11 = m.r11;
        r.r12 = m.r12;
        r.r13 = m.r13;
        r.r14 = m.r14;
        r.r15 = m.r15;
        r.rdi = m.rdi;
        r.rsi = m.rsi;
        r.rbp = m.rbp;
        r.rbx = m.rbx;
        r.rdx = m.rdx;
        r.rax = m.rax;
        r.rcx = m.rcx;
        r.rsp = m.rsp;
        r.rip = m.rip;
        r.eflags = (r.eflags & !FIX_EFLAGS) | (m.eflags & FIX_EFLAGS);
        // Only 64-bit user segments, whatever the frame says.
        r.cs = USER_CS;
        r.ss = USER_SS;
        r.orig_rax = u64::MAX;
        self.arch.fp = fp;
        self.set_sigmask(uc.sigmask);
        // The alternate stack, as sigaltstack would set it; Linux's
        // restore_altstack ignores every refusal.
        let _ = self.set_altstack(Some(uc.stack), m.rsp);
        Ok(m.rax)
    }

    fn bad_frame(&mut self) {
        self.force_signal(Siginfo::kernel(sig::SIGSEGV));
    }
}

/// Makes an XSAVE image from the application safe to load: only enabled
/// features, standard format, reserved bits clear (as Linux sanitizes a
/// user frame before `XRSTOR`).
fn sanitize_xstate(b: &mut [u8]) {
    if b.len() < 576 {
        return;
    }
    // MXCSR: reserved bits must be 0.
    let mask = u32::from_le_bytes(b[28..32].try_into().unwrap_or([0; 4]));
    let mask = if mask == 0 { 0xffbf } else { mask };
    let mxcsr = u32::from_le_bytes(b[24..28].try_into().unwrap_or([0; 4])) & mask;
    b[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    // XSTATE_BV: enabled features only; XCOMP_BV and the rest of the
    // header: zero.
    let bv = u64::from_le_bytes(b[512..520].try_into().unwrap_or([0; 8]))
        & rvisor_platform::arch::enabled_xfeatures();
    b[512..520].copy_from_slice(&bv.to_le_bytes());
    b[520..576].fill(0);
}
