/* Signal delivery (the core the processes need): handlers with siginfo,
 * blocking and pending, SA_RESETHAND, SA_NODEFER, sa_mask, SA_RESTART
 * against EINTR, the alternate stack, FP registers kept across a handler,
 * fault handlers with si_addr and si_code, sigtimedwait, pending signals
 * dropped when ignored. */
#include "compat.h"
#include <pthread.h>

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t hits, depth, max_depth, last_code, last_pid, usr2_blocked;

static void on_info(int sig, siginfo_t *si, void *uc) {
	(void)sig;
	(void)uc;
	hits++;
	last_code = si->si_code;
	last_pid = si->si_pid;
}

static void on_nested(int sig) {
	hits++;
	depth++;
	if (depth > max_depth)
		max_depth = depth;
	if (hits == 1)
		raise(sig);
	depth--;
}

static void on_mask(int sig) {
	(void)sig;
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	usr2_blocked = sigismember(&now, SIGUSR2);
	hits++;
}

static void on_plain(int sig) {
	(void)sig;
	hits++;
}

static void set(int sig, void (*h)(int), int flags) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigaction(sig, &sa, NULL);
}

static void handlers(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_info;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	hits = 0;
	raise(SIGUSR1);
	CHECK("raise_runs_handler", hits == 1 && last_code == SI_TKILL && last_pid == getpid(), "hits %d code %d",
	      (int)hits, (int)last_code);
	kill(getpid(), SIGUSR1);
	CHECK("kill_siginfo", hits == 2 && last_code == SI_USER && last_pid == getpid(), "hits %d code %d", (int)hits,
	      (int)last_code);

	sigset_t b, pend;
	sigemptyset(&b);
	sigaddset(&b, SIGUSR1);
	sigprocmask(SIG_BLOCK, &b, NULL);
	hits = 0;
	raise(SIGUSR1);
	raise(SIGUSR1);
	sigpending(&pend);
	CHECK("blocked_stays_pending", hits == 0 && sigismember(&pend, SIGUSR1), "hits %d", (int)hits);
	sigprocmask(SIG_UNBLOCK, &b, NULL);
	CHECK("unblocked_delivered_once", hits == 1, "hits %d", (int)hits);

	set(SIGUSR1, on_plain, SA_RESETHAND);
	hits = 0;
	raise(SIGUSR1);
	sigaction(SIGUSR1, NULL, &sa);
	CHECK("resethand", hits == 1 && sa.sa_handler == SIG_DFL, "hits %d", (int)hits);

	set(SIGUSR1, on_nested, 0);
	hits = depth = max_depth = 0;
	raise(SIGUSR1);
	CHECK("deferred_while_handled", hits == 2 && max_depth == 1, "hits %d depth %d", (int)hits, (int)max_depth);
	set(SIGUSR1, on_nested, SA_NODEFER);
	hits = depth = max_depth = 0;
	raise(SIGUSR1);
	CHECK("nodefer_nests", hits == 2 && max_depth == 2, "hits %d depth %d", (int)hits, (int)max_depth);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_mask;
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, NULL);
	hits = usr2_blocked = 0;
	raise(SIGUSR1);
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	CHECK("sa_mask_during_handler", hits == 1 && usr2_blocked && !sigismember(&now, SIGUSR2), "blocked %d",
	      (int)usr2_blocked);

	/* Ignoring a pending signal drops it. */
	sigprocmask(SIG_BLOCK, &b, NULL);
	raise(SIGUSR1);
	signal(SIGUSR1, SIG_IGN);
	sigpending(&pend);
	CHECK("ignore_drops_pending", !sigismember(&pend, SIGUSR1), "still pending");
	sigprocmask(SIG_UNBLOCK, &b, NULL);
	signal(SIGUSR1, SIG_DFL);
}

static void restart(void) {
	for (int with = 0; with < 2; with++) {
		set(SIGUSR1, on_plain, with ? SA_RESTART : 0);
		int p[2];
		pipe(p);
		pid_t parent = getpid();
		pid_t c = fork();
		if (c == 0) {
			usleep(30000);
			kill(parent, SIGUSR1);
			usleep(60000);
			write(p[1], "d", 1);
			_exit(0);
		}
		char ch;
		hits = 0;
		ssize_t n = read(p[0], &ch, 1);
		int e = errno;
		waitpid(c, NULL, 0);
		if (with)
			CHECK("sa_restart_read", n == 1 && hits == 1, "n %zd errno %d", n, e);
		else
			CHECK("eintr_read", n < 0 && e == EINTR && hits == 1, "n %zd errno %d", n, e);
		close(p[0]);
		close(p[1]);
	}
	signal(SIGUSR1, SIG_DFL);
}

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

static char altstack[65536];
static volatile sig_atomic_t on_alt, change_refused, seen_flags;

static void on_altstack(int sig) {
	(void)sig;
	char local;
	on_alt = (uintptr_t)&local >= (uintptr_t)altstack && (uintptr_t)&local < (uintptr_t)altstack + sizeof altstack;
	stack_t cur;
	sigaltstack(NULL, &cur);
	seen_flags = cur.ss_flags;
	if (!(cur.ss_flags & SS_ONSTACK))
		on_alt = 0;
	/* No change while running on it (the raw call: musl refuses a stack
	 * flagged SS_ONSTACK itself, with EINVAL). */
	change_refused = syscall(SYS_sigaltstack, &cur, NULL) < 0 && errno == EPERM;
}

static void alternate_stack(void) {
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	EXPECT("sigaltstack", sigaltstack(&ss, NULL), 0);
	set(SIGUSR2, on_altstack, SA_ONSTACK);
	raise(SIGUSR2);
	CHECK("handler_on_altstack", on_alt, "not on the alternate stack");
	CHECK("sigaltstack_eperm_on_it", change_refused, "changing the stack while on it was not refused");
	set(SIGUSR2, on_altstack, 0);
	raise(SIGUSR2);
	CHECK("handler_off_altstack", !on_alt, "on the alternate stack without SA_ONSTACK");
	/* SS_AUTODISARM: the handler sees the stack disarmed (so a nested
	 * signal could use it afresh); rt_sigreturn arms it again. */
	ss.ss_flags = SS_AUTODISARM;
	EXPECT("sigaltstack_autodisarm", sigaltstack(&ss, NULL), 0);
	set(SIGUSR2, on_altstack, SA_ONSTACK);
	raise(SIGUSR2);
	stack_t after;
	sigaltstack(NULL, &after);
	CHECK("autodisarm_in_handler", seen_flags == SS_DISABLE, "flags %#x", (unsigned)seen_flags);
	CHECK("autodisarm_rearmed", after.ss_flags == SS_AUTODISARM && after.ss_size == sizeof altstack,
	      "flags %#x size %zu", (unsigned)after.ss_flags, after.ss_size);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	signal(SIGUSR2, SIG_DFL);
}

static void clobber_fp(int sig) {
	(void)sig;
	__asm__ volatile("pcmpeqd %%xmm8, %%xmm8\n\txorps %%xmm0, %%xmm0" ::: "xmm0", "xmm8");
	hits++;
}

static void fp_kept(void) {
	set(SIGUSR1, clobber_fp, 0);
	hits = 0;
	uint64_t in = 0x1122334455667788ull, out = 0;
	long r;
	/* tgkill(self) straight from the instruction stream: the handler runs
	 * when the call returns, between the two moves. */
	__asm__ volatile("movq %[in], %%xmm8\n\t"
			 "syscall\n\t"
			 "movq %%xmm8, %[out]"
			 : [out] "=r"(out), "=a"(r)
			 : [in] "r"(in), "a"((long)SYS_tgkill), "D"((long)getpid()), "S"((long)syscall(SYS_gettid)),
			   "d"((long)SIGUSR1)
			 : "rcx", "r11", "memory", "xmm8");
	CHECK("fp_registers_kept", hits == 1 && out == in && r == 0, "hits %d out %#llx", (int)hits,
	      (unsigned long long)out);
	signal(SIGUSR1, SIG_DFL);
}

static sigjmp_buf jb;
static volatile uintptr_t fault_addr;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *uc) {
	(void)sig;
	(void)uc;
	fault_addr = (uintptr_t)si->si_addr;
	fault_code = si->si_code;
	siglongjmp(jb, 1);
}

static void faults(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sigsetjmp(jb, 1) == 0)
		*(volatile char *)(ro + 8) = 1;
	CHECK("segv_accerr", fault_addr == (uintptr_t)(ro + 8) && fault_code == SEGV_ACCERR, "addr %#lx code %d",
	      (unsigned long)fault_addr, fault_code);
	munmap(ro, 4096);
	if (sigsetjmp(jb, 1) == 0)
		(void)*(volatile char *)(ro + 16);
	CHECK("segv_maperr", fault_addr == (uintptr_t)(ro + 16) && fault_code == SEGV_MAPERR, "addr %#lx code %d",
	      (unsigned long)fault_addr, fault_code);
	/* Blocked, a fault still kills (the default action is forced). */
	pid_t c = fork();
	if (c == 0) {
		sigset_t b;
		sigemptyset(&b);
		sigaddset(&b, SIGSEGV);
		sigprocmask(SIG_BLOCK, &b, NULL);
		*(volatile char *)8 = 1;
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	CHECK("blocked_fault_kills", WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
	signal(SIGSEGV, SIG_DFL);
}

static void waiting(void) {
	sigset_t b;
	sigemptyset(&b);
	sigaddset(&b, SIGUSR1);
	sigprocmask(SIG_BLOCK, &b, NULL);
	raise(SIGUSR1);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	struct timespec ts = {1, 0};
	/* The raw call: glibc's wrapper folds SI_TKILL into SI_USER. */
	int s = (int)syscall(SYS_rt_sigtimedwait, &b, &si, &ts, 8);
	CHECK("sigtimedwait_takes", s == SIGUSR1 && si.si_signo == SIGUSR1 && si.si_code == SI_TKILL, "s %d code %d", s,
	      si.si_code);
	ts.tv_sec = 0;
	ts.tv_nsec = 20000000;
	s = sigtimedwait(&b, &si, &ts);
	CHECK("sigtimedwait_timeout", s < 0 && errno == EAGAIN, "s %d errno %d", s, errno);
	ts.tv_nsec = -1;
	s = sigtimedwait(&b, &si, &ts);
	CHECK("sigtimedwait_einval", s < 0 && errno == EINVAL, "s %d errno %d", s, errno);
	sigprocmask(SIG_UNBLOCK, &b, NULL);
}

/* A timer signal 30 ms from now (ITIMER_REAL, one-shot). */
static void alarm_soon(void) {
	struct itimerval v = {{0, 0}, {0, 30000}};
	setitimer(ITIMER_REAL, &v, NULL);
}

static volatile int futex_word;
static volatile sig_atomic_t alarms;

static void on_alarm_release(int sig) {
	(void)sig;
	alarms++;
	futex_word = 1;
}

/* SA_RESTART against EINTR for wait4 and futex waits. */
static void restart_more(void) {
	for (int with = 0; with < 2; with++) {
		set(SIGALRM, on_alarm_release, with ? SA_RESTART : 0);
		pid_t c = fork();
		if (c == 0) {
			struct timespec ts = {0, 150000000};
			nanosleep(&ts, NULL);
			_exit(3);
		}
		alarm_soon();
		int st;
		pid_t r = waitpid(c, &st, 0);
		int e = errno;
		if (with)
			CHECK("sa_restart_wait4", r == c && WEXITSTATUS(st) == 3, "r %d errno %d", r, e);
		else {
			CHECK("eintr_wait4", r < 0 && e == EINTR, "r %d errno %d", r, e);
			waitpid(c, &st, 0);
		}
	}
	/* FUTEX_WAIT without a timeout restarts with SA_RESTART (and then
	 * finds the word changed by the handler: EAGAIN); with a timeout it
	 * ends with EINTR either way. */
	for (int with = 0; with < 2; with++) {
		set(SIGALRM, on_alarm_release, with ? SA_RESTART : 0);
		futex_word = 0;
		alarm_soon();
		long r = raw(SYS_futex, (long)&futex_word, 128 /* FUTEX_WAIT_PRIVATE */, 0, 0, 0, 0);
		if (with)
			EXPECT("sa_restart_futex_wait", r, -EAGAIN);
		else
			EXPECT("eintr_futex_wait", r, -EINTR);
	}
	set(SIGALRM, on_alarm_release, SA_RESTART);
	futex_word = 0;
	alarm_soon();
	struct timespec ts = {2, 0};
	EXPECT("timed_futex_wait_eintr", raw(SYS_futex, (long)&futex_word, 128, 0, (long)&ts, 0, 0), -EINTR);
	signal(SIGALRM, SIG_DFL);
}

static volatile sig_atomic_t nested_ok, outer_on_alt, inner_on_alt;

static int on_alt_stack(void *p) {
	return (uintptr_t)p >= (uintptr_t)altstack && (uintptr_t)p < (uintptr_t)altstack + sizeof altstack;
}

static void inner(int sig) {
	(void)sig;
	char here;
	inner_on_alt = on_alt_stack(&here);
}

static void outer(int sig) {
	(void)sig;
	char here;
	outer_on_alt = on_alt_stack(&here);
	raise(SIGUSR2);
	/* The inner frame went below this one on the same stack. */
	nested_ok = inner_on_alt;
}

/* Handlers nest on the alternate stack: the second frame goes below the
 * first, on it. */
static void nested_on_altstack(void) {
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	sigaltstack(&ss, NULL);
	set(SIGUSR1, outer, SA_ONSTACK);
	set(SIGUSR2, inner, SA_ONSTACK);
	raise(SIGUSR1);
	CHECK("nested_handlers_on_altstack", outer_on_alt && nested_ok, "outer %d inner %d", outer_on_alt, inner_on_alt);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
}

static volatile int handler_tid, worker_tid, worker_stop;

static void on_usr1_tid(int sig) {
	(void)sig;
	handler_tid = (int)raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
}

static void *unblocked_worker(void *arg) {
	(void)arg;
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	worker_tid = (int)raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
	while (!worker_stop)
		;
	return NULL;
}

/* A signal for the process goes to a thread that does not block it. */
static void to_the_thread_that_takes_it(void) {
	set(SIGUSR1, on_usr1_tid, 0);
	sigset_t b, old;
	sigemptyset(&b);
	sigaddset(&b, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &b, &old);
	pthread_t th;
	pthread_create(&th, NULL, unblocked_worker, NULL);
	while (!worker_tid)
		;
	kill(getpid(), SIGUSR1);
	for (int i = 0; i < 2000 && !handler_tid; i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	CHECK("process_signal_to_unblocked_thread", handler_tid == worker_tid, "handler ran on %d, worker %d",
	      handler_tid, worker_tid);
	worker_stop = 1;
	pthread_join(th, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
}

int main(void) {
	handlers();
	to_the_thread_that_takes_it();
	restart_more();
	nested_on_altstack();
	restart();
	alternate_stack();
	fp_kept();
	faults();
	waiting();
	return 0;
}
