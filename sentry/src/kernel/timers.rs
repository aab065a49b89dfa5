//! Interval timers: `alarm`/`setitimer(ITIMER_REAL)` and POSIX timers
//! (`timer_create` and friends). One sentry thread sleeps until the next
//! expiry of any timer of the sandbox and sends the signals.
//!
//! A POSIX timer has at most one signal queued: an expiry while it is
//! still pending counts as an overrun, reported in the delivered
//! `si_overrun` and by `timer_getoverrun`, as on Linux. Periods missed
//! entirely (the sentry thread ran late) are overruns too.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::signal::{sig, Siginfo};
use super::{TaskShared, ThreadGroup};

/// `CLOCK_PROCESS_CPUTIME_ID`.
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;

/// `si_code` of a POSIX timer's signal.
pub const SI_TIMER: i32 = -2;

/// The shortest time from one expiry of a periodic timer to the next
/// the timer thread arms (shorter periods count overruns instead).
const MIN_REARM: Duration = Duration::from_micros(100);

/// Most POSIX timers one process may have.
pub const MAX_TIMERS: usize = 4096;

/// Where a POSIX timer's expiry goes (`sigev_notify`).
#[derive(Debug)]
pub enum Notify {
    /// `SIGEV_SIGNAL`: the process.
    Process,
    /// `SIGEV_THREAD_ID`: one thread of the process.
    Thread(Weak<TaskShared>),
    /// `SIGEV_NONE`: nowhere (the timer is only read).
    None,
}

/// What a timer is.
#[derive(Debug)]
pub enum Kind {
    /// `ITIMER_REAL` (`alarm`): `SIGALRM` to the process.
    Real,
    /// A POSIX timer.
    Posix {
        /// Its id in the process.
        id: i32,
        /// The clock it was made on.
        clock: i32,
        /// Where its signal goes.
        notify: Notify,
        /// The signal.
        signo: i32,
        /// `sigev_value`.
        value: u64,
    },
    /// A timerfd's timer: expiries are counted in the file.
    Fd {
        /// The clock it was made on.
        clock: i32,
        /// The file's counter (the timer lives in the file).
        sink: Weak<dyn ExpirySink>,
    },
}

/// Where a timerfd's expiries go.
pub trait ExpirySink: Send + Sync + std::fmt::Debug {
    /// `n` more expiries.
    fn expired(&self, n: u64);
}

#[derive(Debug, Default)]
struct State {
    /// Arming generation (0: disarmed); an expiry of an older one is stale.
    seq: u64,
    deadline: Option<Instant>,
    interval: Duration,
    /// Overruns since the last delivered signal.
    overrun: u32,
    /// Overruns reported with the last delivered signal.
    overrun_last: u32,
    /// A timer on the process CPU clock: the CPU time of its next expiry.
    cpu_target: Option<Duration>,
}

/// One timer.
#[derive(Debug)]
pub struct Timer {
    tg: Weak<ThreadGroup>,
    kind: Kind,
    state: Mutex<State>,
    /// `state.seq`, readable without the lock (the queue drops entries of
    /// older armings with it).
    cur: AtomicU64,
}

/// A timer's setting, as `timer_gettime`/`getitimer` report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Setting {
    /// Time to the next expiry (zero: disarmed).
    pub value: Duration,
    /// Period (zero: one-shot).
    pub interval: Duration,
}

impl Timer {
    /// A disarmed timer of process `tg`.
    pub fn new(tg: &Arc<ThreadGroup>, kind: Kind) -> Arc<Timer> {
        Arc::new(Timer {
            tg: Arc::downgrade(tg),
            kind,
            state: Mutex::new(State::default()),
            cur: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether it counts the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`).
    pub fn on_cpu_clock(&self) -> bool {
        matches!(self.kind, Kind::Posix { clock: CLOCK_PROCESS_CPUTIME_ID, .. })
    }

    /// The process's CPU time so far (what a CPU-clock timer counts).
    pub fn cpu_used(&self) -> Duration {
        self.tg.upgrade().map(|tg| tg.cpu_times()).map_or(Duration::ZERO, |c| c.user + c.sys)
    }

    /// The current setting. An armed timer whose expiry is due reports
    /// `min_left` (Linux never reports an armed timer as zero).
    pub fn get(&self, min_left: Duration) -> Setting {
        if self.on_cpu_clock() {
            let used = self.cpu_used();
            let st = self.lock();
            let value = st.cpu_target.map_or(Duration::ZERO, |t| t.saturating_sub(used).max(min_left));
            return Setting { value, interval: st.interval };
        }
        let st = self.lock();
        let value = match st.deadline {
            Some(d) if st.seq != 0 => d.saturating_duration_since(Instant::now()).max(min_left),
            _ => Duration::ZERO,
        };
        Setting { value, interval: st.interval }
    }

    /// Arms the timer to expire at `at` (then every `interval`), or
    /// disarms it (`None`); returns the previous setting.
    pub fn set(
        self: &Arc<Self>,
        queue: &Arc<TimerQueue>,
        at: Option<Instant>,
        interval: Duration,
    ) -> Setting {
        let old = self.get(Duration::from_nanos(1));
        let mut st = self.lock();
        st.overrun = 0;
        match at {
            Some(at) => {
                st.deadline = Some(at);
                st.interval = interval;
                st.seq = queue.arm(self, at);
            }
            None => {
                *st = State { overrun_last: st.overrun_last, ..State::default() };
            }
        }
        self.cur.store(st.seq, Ordering::Release);
        old
    }

    /// Arms a CPU-clock timer to expire when the process's CPU time reaches
    /// `target` (then every `interval` of it), or disarms it; returns the
    /// previous setting.
    pub fn set_cpu(
        self: &Arc<Self>,
        queue: &Arc<TimerQueue>,
        target: Option<Duration>,
        interval: Duration,
    ) -> Setting {
        let old = self.get(Duration::from_nanos(1));
        {
            let mut st = self.lock();
            st.overrun = 0;
            st.cpu_target = target;
            st.interval = interval;
        }
        if target.is_some() {
            queue.watch_cpu_posix(self);
        }
        old
    }

    /// A sample of a CPU-clock timer: fires if the process used its time.
    /// Returns whether it stays armed.
    fn check_cpu(self: &Arc<Self>) -> bool {
        let Some(tg) = self.tg.upgrade() else { return false };
        let used = self.cpu_used();
        let mut st = self.lock();
        let Some(target) = st.cpu_target else { return false };
        if used < target {
            return true;
        }
        if st.interval.is_zero() {
            st.cpu_target = None;
        } else {
            let periods =
                u32::try_from((used - target).as_nanos() / st.interval.as_nanos().max(1)).unwrap_or(u32::MAX);
            st.overrun = st.overrun.saturating_add(periods);
            st.cpu_target =
                Some(target.saturating_add(st.interval.saturating_mul(periods.saturating_add(1))));
        }
        let armed = st.cpu_target.is_some();
        self.notify(&tg, st);
        armed
    }

    /// The clock of a POSIX timer.
    pub fn clock(&self) -> Option<i32> {
        match self.kind {
            Kind::Posix { clock, .. } | Kind::Fd { clock, .. } => Some(clock),
            Kind::Real => None,
        }
    }

    /// Overruns reported with the last delivered signal
    /// (`timer_getoverrun`).
    pub fn overrun_last(&self) -> u32 {
        self.lock().overrun_last
    }

    /// A timer of no process (a timerfd's: any process holding the file
    /// reads it).
    pub fn detached(kind: Kind) -> Arc<Timer> {
        Arc::new(Timer { tg: Weak::new(), kind, state: Mutex::new(State::default()), cur: AtomicU64::new(0) })
    }

    /// An expiry of arming `seq`.
    fn fire(self: &Arc<Self>, queue: &Arc<TimerQueue>, seq: u64) {
        let tg = self.tg.upgrade();
        if tg.is_none() && !matches!(self.kind, Kind::Fd { .. }) {
            return;
        }
        let mut missed_now = 0;
        let mut st = self.lock();
        let Some(deadline) = st.deadline.filter(|_| st.seq == seq && seq != 0) else { return };
        if st.interval.is_zero() {
            st.seq = 0;
            st.deadline = None;
        } else {
            // Periods the thread missed are overruns too. The next expiry
            // is at least MIN_REARM away: a process asking for a period of
            // a nanosecond gets overruns, not a sentry thread spinning.
            let now = Instant::now();
            let far = now + Duration::from_secs(1 << 32);
            let regular = deadline.checked_add(st.interval).unwrap_or(far);
            let next_at = (now + MIN_REARM).max(regular);
            let skipped = next_at.saturating_duration_since(regular);
            let missed =
                u32::try_from(skipped.as_nanos().div_ceil(st.interval.as_nanos().max(1))).unwrap_or(u32::MAX);
            let next = deadline
                .checked_add(st.interval.saturating_mul(missed.saturating_add(1)))
                .unwrap_or(now + Duration::from_secs(1 << 32));
            st.overrun = st.overrun.saturating_add(missed);
            missed_now = missed;
            st.deadline = Some(next);
            st.seq = queue.arm(self, next);
        }
        self.cur.store(st.seq, Ordering::Release);
        match (&self.kind, tg) {
            (Kind::Fd { sink, .. }, _) => {
                // A timerfd counts every period, missed ones too.
                st.overrun = 0;
                drop(st);
                if let Some(s) = sink.upgrade() {
                    s.expired(u64::from(missed_now) + 1);
                }
            }
            (_, Some(tg)) => self.notify(&tg, st),
            _ => {}
        }
    }

    /// Sends the expiry's signal (or, if the last one is still queued,
    /// counts an overrun).
    fn notify(&self, tg: &Arc<ThreadGroup>, mut st: std::sync::MutexGuard<'_, State>) {
        match &self.kind {
            Kind::Real => {
                drop(st);
                tg.send_signal(Siginfo::kernel(sig::SIGALRM));
            }
            Kind::Posix { id, notify, signo, value, .. } => {
                let info = timer_info(*signo, *id, *value);
                let queued_already =
                    |p: &super::signal::Pending| p.holds(|i| is_timer_signal(i, *signo, *id));
                match notify {
                    Notify::None => {}
                    Notify::Process => {
                        if queued_already(tg.pending()) {
                            st.overrun = st.overrun.saturating_add(1);
                        } else {
                            drop(st);
                            tg.send_signal(info);
                        }
                    }
                    Notify::Thread(t) => {
                        if let Some(t) = t.upgrade() {
                            if queued_already(t.pending()) {
                                st.overrun = st.overrun.saturating_add(1);
                            } else {
                                drop(st);
                                t.send(info);
                            }
                        }
                    }
                }
            }
            // Counted by `fire`.
            Kind::Fd { .. } => {}
        }
    }

    /// The timer's signal is being delivered: it reports the overruns.
    fn delivered(&self, info: &mut Siginfo) {
        let mut st = self.lock();
        st.overrun_last = st.overrun;
        st.overrun = 0;
        info.fields[0] = (info.fields[0] & 0xffff_ffff) | (u64::from(st.overrun_last) << 32);
    }
}

/// The `siginfo` of POSIX timer `id`: `si_timerid`, `si_overrun` (filled
/// in at delivery), `si_value`.
fn timer_info(signo: i32, id: i32, value: u64) -> Siginfo {
    let mut i = Siginfo { signo, code: SI_TIMER, ..Siginfo::default() };
    i.fields[0] = u64::from(id.cast_unsigned());
    i.fields[1] = value;
    i
}

fn is_timer_signal(i: &Siginfo, signo: i32, id: i32) -> bool {
    i.signo == signo && i.code == SI_TIMER && i.fields[0] & 0xffff_ffff == u64::from(id.cast_unsigned())
}

/// Which CPU time an interval timer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuClock {
    /// `ITIMER_VIRTUAL`: the application's user time; `SIGVTALRM`.
    Virtual,
    /// `ITIMER_PROF`: user and system time; `SIGPROF`.
    Prof,
}

#[derive(Debug, Default)]
struct CpuState {
    /// The CPU time at which it expires next.
    target: Option<Duration>,
    interval: Duration,
}

/// `ITIMER_VIRTUAL` or `ITIMER_PROF`: expiries in the process's CPU time,
/// which the timer thread samples every [`CPU_TICK`] while one is armed.
#[derive(Debug)]
pub struct CpuTimer {
    tg: Weak<ThreadGroup>,
    clock: CpuClock,
    state: Mutex<CpuState>,
}

/// How often armed CPU-time timers are checked (Linux checks at each
/// scheduler tick, 4 ms at HZ=250).
pub const CPU_TICK: Duration = Duration::from_millis(5);

impl CpuTimer {
    /// A disarmed timer of process `tg`.
    pub fn new(tg: &Arc<ThreadGroup>, clock: CpuClock) -> Arc<CpuTimer> {
        Arc::new(CpuTimer { tg: Arc::downgrade(tg), clock, state: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CpuState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn used(&self, tg: &ThreadGroup) -> Duration {
        let c = tg.cpu_times();
        match self.clock {
            CpuClock::Virtual => c.user,
            CpuClock::Prof => c.user + c.sys,
        }
    }

    /// The current setting (value: CPU time left).
    pub fn get(&self) -> Setting {
        let st = self.lock();
        let used = self.tg.upgrade().map(|tg| self.used(&tg)).unwrap_or_default();
        let value =
            st.target.map_or(Duration::ZERO, |t| t.saturating_sub(used).max(Duration::from_micros(1)));
        Setting { value, interval: st.interval }
    }

    /// Arms it `value` of CPU time from now (zero: disarms), then every
    /// `interval`; returns the old setting.
    pub fn set(self: &Arc<Self>, queue: &Arc<TimerQueue>, value: Duration, interval: Duration) -> Setting {
        let old = self.get();
        let used = self.tg.upgrade().map(|tg| self.used(&tg)).unwrap_or_default();
        {
            let mut st = self.lock();
            st.target = (!value.is_zero()).then(|| used.saturating_add(value));
            st.interval = interval;
        }
        if !value.is_zero() {
            queue.watch_cpu(self);
        }
        old
    }

    /// A sample: fires if the process used its time. Returns whether the
    /// timer stays armed.
    fn check(&self) -> bool {
        let Some(tg) = self.tg.upgrade() else { return false };
        let used = self.used(&tg);
        let fire = {
            let mut st = self.lock();
            let Some(target) = st.target else { return false };
            if used < target {
                return true;
            }
            st.target = if st.interval.is_zero() {
                None
            } else {
                // Periods already used up are skipped (not queued).
                let late = used - target;
                let periods =
                    u32::try_from(late.as_nanos() / st.interval.as_nanos().max(1)).unwrap_or(u32::MAX);
                Some(target.saturating_add(st.interval.saturating_mul(periods.saturating_add(1))))
            };
            st.target.is_some()
        };
        let signo = match self.clock {
            CpuClock::Virtual => sig::SIGVTALRM,
            CpuClock::Prof => sig::SIGPROF,
        };
        tg.send_signal(Siginfo::kernel(signo));
        fire
    }

    fn disarm(&self) {
        self.lock().target = None;
    }
}

/// A process's timers.
#[derive(Debug, Default)]
pub struct ProcessTimers {
    /// `ITIMER_REAL`, made on first use.
    pub real: Option<Arc<Timer>>,
    /// `ITIMER_VIRTUAL`, made on first use.
    pub virt: Option<Arc<CpuTimer>>,
    /// `ITIMER_PROF`, made on first use.
    pub prof: Option<Arc<CpuTimer>>,
    /// POSIX timers by id.
    pub posix: BTreeMap<i32, Arc<Timer>>,
    next_id: i32,
}

impl ProcessTimers {
    /// A free POSIX timer id (Linux hands them out in order).
    pub fn next_id(&mut self) -> Option<i32> {
        if self.posix.len() >= MAX_TIMERS {
            return None;
        }
        loop {
            let id = self.next_id;
            self.next_id = if self.next_id == i32::MAX { 0 } else { self.next_id + 1 };
            if !self.posix.contains_key(&id) {
                return Some(id);
            }
        }
    }

    /// `execve`: POSIX timers are gone, `ITIMER_REAL` stays.
    pub fn exec(&mut self) {
        for t in std::mem::take(&mut self.posix).into_values() {
            t.disarm();
        }
    }

    /// The process ended: nothing fires any more.
    pub fn clear(&mut self) {
        self.exec();
        if let Some(r) = self.real.take() {
            r.disarm();
        }
        for c in [self.virt.take(), self.prof.take()].into_iter().flatten() {
            c.disarm();
        }
    }
}

impl Timer {
    fn disarm(&self) {
        let mut st = self.lock();
        st.seq = 0;
        st.deadline = None;
        st.cpu_target = None;
        self.cur.store(0, Ordering::Release);
    }
}

/// A signal taken for delivery: a POSIX timer's gets its overrun count.
pub fn delivered(tg: &ThreadGroup, info: &mut Siginfo) {
    if info.code != SI_TIMER {
        return;
    }
    let id = i32::try_from(info.fields[0] & 0xffff_ffff).unwrap_or(-1);
    let t = tg.timers.lock().unwrap_or_else(|p| p.into_inner()).posix.get(&id).cloned();
    if let Some(t) = t {
        t.delivered(info);
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    armed: HashMap<u64, Weak<Timer>>,
    next_seq: u64,
    /// Size of the heap after the last compaction.
    compacted: usize,
}

/// The sandbox's timer thread and its queue of expiries.
#[derive(Default)]
pub struct TimerQueue {
    q: Mutex<Queue>,
    /// Armed CPU-time timers, sampled every [`CPU_TICK`].
    cpu: Mutex<Vec<Weak<CpuTimer>>>,
    /// Armed POSIX timers on the process CPU clock, sampled likewise.
    cpu_posix: Mutex<Vec<Weak<Timer>>>,
    cv: Condvar,
    thread: OnceLock<()>,
}

impl std::fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerQueue").finish_non_exhaustive()
    }
}

impl TimerQueue {
    /// Samples `t` from now on, until it is disarmed.
    fn watch_cpu(self: &Arc<Self>, t: &Arc<CpuTimer>) {
        self.start();
        {
            let mut cpu = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
            if !cpu.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(t))) {
                cpu.push(Arc::downgrade(t));
            }
        }
        self.cv.notify_one();
    }

    /// Samples CPU-clock POSIX timer `t` from now on, until it is disarmed.
    fn watch_cpu_posix(self: &Arc<Self>, t: &Arc<Timer>) {
        self.start();
        {
            let mut cpu = self.cpu_posix.lock().unwrap_or_else(|p| p.into_inner());
            if !cpu.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(t))) {
                cpu.push(Arc::downgrade(t));
            }
        }
        self.cv.notify_one();
    }

    fn start(self: &Arc<Self>) {
        self.thread.get_or_init(|| {
            let me = Arc::downgrade(self);
            let spawned = std::thread::Builder::new().name("timers".into()).spawn(move || Self::run(&me));
            if let Err(e) = spawned {
                tracing::error!("timer thread: {e}");
            }
        });
    }

    /// Queues an expiry of `t` at `at`; returns its arming generation.
    fn arm(self: &Arc<Self>, t: &Arc<Timer>, at: Instant) -> u64 {
        self.start();
        let mut q = self.q.lock().unwrap_or_else(|p| p.into_inner());
        q.next_seq += 1;
        let seq = q.next_seq;
        // Entries of timers re-armed, disarmed or gone stay until their
        // time; a process re-arming far ahead in a loop must not grow the
        // queue without bound: they are dropped when they are most of it.
        if q.heap.len() >= 64 && q.heap.len() >= 2 * q.compacted {
            let armed = std::mem::take(&mut q.armed);
            let keep: HashMap<u64, Weak<Timer>> = armed
                .into_iter()
                .filter(|(s, w)| w.upgrade().is_some_and(|t| t.cur.load(Ordering::Acquire) == *s))
                .collect();
            q.heap.retain(|Reverse((_, s))| keep.contains_key(s));
            q.compacted = q.heap.len().max(32);
            q.armed = keep;
        }
        q.heap.push(Reverse((at, seq)));
        q.armed.insert(seq, Arc::downgrade(t));
        self.cv.notify_one();
        seq
    }

    fn run(me: &Weak<TimerQueue>) {
        loop {
            let Some(this) = me.upgrade() else { return };
            let due = {
                let mut q = this.q.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some(&Reverse((at, seq))) = q.heap.peek() {
                    if at > now {
                        break;
                    }
                    q.heap.pop();
                    if let Some(t) = q.armed.remove(&seq).and_then(|w| w.upgrade()) {
                        due.push((t, seq));
                    }
                }
                if due.is_empty() {
                    // Sleep until the next expiry (or a new one), at most
                    // a second so that a sandbox going away ends the loop,
                    // and a CPU tick while CPU-time timers are armed.
                    let mut wait = q.heap.peek().map_or(Duration::from_secs(1), |Reverse((at, _))| {
                        at.saturating_duration_since(now).min(Duration::from_secs(1))
                    });
                    if !this.cpu.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
                        || !this.cpu_posix.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
                    {
                        wait = wait.min(CPU_TICK);
                    }
                    drop(this.cv.wait_timeout(q, wait).unwrap_or_else(|p| p.into_inner()));
                    this.sample_cpu();
                    continue;
                }
                due
            };
            this.sample_cpu();
            for (t, seq) in due {
                t.fire(&this, seq);
            }
        }
    }

    fn sample_cpu_posix(&self) {
        let timers: Vec<Arc<Timer>> = self
            .cpu_posix
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for t in &timers {
            t.check_cpu();
        }
        // Forget what is no longer armed (re-armed ones are still listed).
        self.cpu_posix
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| w.upgrade().is_some_and(|t| t.lock().cpu_target.is_some()));
    }

    /// Checks the armed CPU-time timers; forgets those no longer armed.
    fn sample_cpu(&self) {
        self.sample_cpu_posix();
        let timers: Vec<Arc<CpuTimer>> =
            self.cpu.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect();
        if timers.is_empty() {
            return;
        }
        let keep: Vec<Weak<CpuTimer>> = timers.iter().filter(|t| t.check()).map(Arc::downgrade).collect();
        let mut cpu = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
        // Timers armed meanwhile are kept too.
        cpu.retain(|w| w.upgrade().is_some_and(|t| t.lock().target.is_some()));
        for w in keep {
            if !cpu.iter().any(|x| x.ptr_eq(&w)) {
                cpu.push(w);
            }
        }
    }
}
