/* Interval timers and queued signals: alarm, getitimer/setitimer
 * (ITIMER_REAL), POSIX timers (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID,
 * overruns, TIMER_ABSTIME, errors), timers across fork and execve,
 * rt_sigqueueinfo/rt_tgsigqueueinfo and their permission rule. Raw system
 * calls throughout: the C libraries wrap timers differently. */
#include "compat.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

/* The kernel's siginfo, as raw fields (libc spellings differ). */
struct ksiginfo {
	int signo, err, code, pad;
	union {
		struct {
			int tid, overrun;
			unsigned long value;
		} timer;
		struct {
			int pid;
			unsigned uid;
			unsigned long value;
		} rt;
		long words[14];
	};
};

struct kitimerspec {
	struct timespec interval, value;
};

struct ksigevent {
	unsigned long value;
	int signo, notify;
	int tid;
	int pad[11];
};

#define SIGSET(s) (1UL << ((s) - 1))
#define SI_TIMER_CODE (-2)
#define SI_QUEUE_CODE (-1)
#define SI_KERNEL_CODE 0x80

static long block(int sig) {
	unsigned long set = SIGSET(sig);
	return raw(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, 8, 0, 0);
}

static long unblock(int sig) {
	unsigned long set = SIGSET(sig);
	return raw(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, 8, 0, 0);
}

/* Waits up to `ms` for `sig` (blocked); its number or -errno. */
static long wait_sig(int sig, struct ksiginfo *si, long ms) {
	unsigned long set = SIGSET(sig);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	memset(si, 0, sizeof *si);
	return raw(SYS_rt_sigtimedwait, (long)&set, (long)si, (long)&ts, 8, 0, 0);
}

static long ms_since(struct timespec *a) {
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

static void itimers(void) {
	EXPECT("alarm_none", raw(SYS_alarm, 0, 0, 0, 0, 0, 0), 0);
	raw(SYS_alarm, 10, 0, 0, 0, 0, 0);
	EXPECT("alarm_left", raw(SYS_alarm, 0, 0, 0, 0, 0, 0), 10);
	struct itimerval v = {{0, 0}, {0, 0}}, o;
	EXPECT("getitimer_disarmed", raw(SYS_getitimer, ITIMER_REAL, (long)&o, 0, 0, 0, 0), 0);
	CHECK("getitimer_zero", o.it_value.tv_sec == 0 && o.it_value.tv_usec == 0 && o.it_interval.tv_usec == 0,
	      "%ld.%06ld", (long)o.it_value.tv_sec, (long)o.it_value.tv_usec);
	v.it_value.tv_usec = 1000000;
	EXPECT("setitimer_bad_usec", raw(SYS_setitimer, ITIMER_REAL, (long)&v, 0, 0, 0, 0), -EINVAL);
	v.it_value.tv_usec = 0;
	v.it_value.tv_sec = -1;
	EXPECT("setitimer_negative", raw(SYS_setitimer, ITIMER_REAL, (long)&v, 0, 0, 0, 0), -EINVAL);
	EXPECT("setitimer_bad_which", raw(SYS_setitimer, 7, (long)&v, 0, 0, 0, 0), -EINVAL);
	EXPECT("getitimer_efault", raw(SYS_getitimer, ITIMER_REAL, 8, 0, 0, 0, 0), -EFAULT);

	/* A periodic ITIMER_REAL: SIGALRM from the kernel, every 20 ms. */
	block(SIGALRM);
	v = (struct itimerval){{0, 20000}, {0, 20000}};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT("setitimer_periodic", raw(SYS_setitimer, ITIMER_REAL, (long)&v, 0, 0, 0, 0), 0);
	struct ksiginfo si;
	int got = 0, kernel_code = 1;
	for (int i = 0; i < 3; i++) {
		if (wait_sig(SIGALRM, &si, 2000) == SIGALRM) {
			got++;
			kernel_code &= si.code == SI_KERNEL_CODE;
		}
	}
	long ms = ms_since(&t0);
	CHECK("itimer_fires", got == 3 && ms >= 55, "%d signals in %ld ms", got, ms);
	CHECK("itimer_si_kernel", kernel_code, "si_code %d", si.code);
	raw(SYS_getitimer, ITIMER_REAL, (long)&o, 0, 0, 0, 0);
	CHECK("getitimer_periodic", o.it_interval.tv_sec == 0 && o.it_interval.tv_usec == 20000 && o.it_value.tv_sec == 0 &&
	                                  o.it_value.tv_usec > 0 && o.it_value.tv_usec <= 20000,
	      "interval %ld value %ld", (long)o.it_interval.tv_usec, (long)o.it_value.tv_usec);
	struct itimerval zero = {{0, 0}, {0, 0}};
	EXPECT("setitimer_old", raw(SYS_setitimer, ITIMER_REAL, (long)&zero, (long)&o, 0, 0, 0), 0);
	CHECK("setitimer_old_value", o.it_interval.tv_usec == 20000, "%ld", (long)o.it_interval.tv_usec);
	/* Drain a SIGALRM that came in between. */
	wait_sig(SIGALRM, &si, 0);
	EXPECT("disarmed_quiet", wait_sig(SIGALRM, &si, 60), -EAGAIN);
	unblock(SIGALRM);
}

static int create(int clk, struct ksigevent *ev) {
	int id = -1;
	long r = raw(SYS_timer_create, clk, (long)ev, (long)&id, 0, 0, 0);
	return r < 0 ? (int)r : id;
}

static long settime(int id, int flags, long sec, long nsec, long isec, long insec, struct kitimerspec *old) {
	struct kitimerspec s = {{isec, insec}, {sec, nsec}};
	return raw(SYS_timer_settime, id, flags, (long)&s, (long)old, 0, 0);
}

static void posix_timers(void) {
	struct ksiginfo si;
	/* No sigevent: SIGALRM, the id as the value. */
	block(SIGALRM);
	int a = create(CLOCK_MONOTONIC, NULL);
	CHECK("create_default", a >= 0, "%d", a);
	settime(a, 0, 0, 5000000, 0, 0, NULL);
	EXPECT("default_fires", wait_sig(SIGALRM, &si, 2000), SIGALRM);
	CHECK("default_info", si.code == SI_TIMER_CODE && si.timer.tid == a && si.timer.value == (unsigned long)a,
	      "code %d tid %d value %lu", si.code, si.timer.tid, si.timer.value);
	EXPECT("delete", raw(SYS_timer_delete, a, 0, 0, 0, 0, 0), 0);
	EXPECT("delete_again", raw(SYS_timer_delete, a, 0, 0, 0, 0, 0), -EINVAL);
	unblock(SIGALRM);

	/* SIGEV_SIGNAL with a value; gettime while armed. */
	block(SIGUSR1);
	struct ksigevent ev = {.value = 0x1234, .signo = SIGUSR1, .notify = SIGEV_SIGNAL};
	int b = create(CLOCK_REALTIME, &ev);
	settime(b, 0, 10, 0, 0, 0, NULL);
	struct kitimerspec cur;
	EXPECT("gettime", raw(SYS_timer_gettime, b, (long)&cur, 0, 0, 0, 0), 0);
	CHECK("gettime_armed", cur.value.tv_sec == 9 && cur.interval.tv_sec == 0, "%ld.%09ld",
	      (long)cur.value.tv_sec, cur.value.tv_nsec);
	struct kitimerspec old;
	settime(b, 0, 0, 1000000, 0, 0, &old);
	CHECK("settime_old", old.value.tv_sec == 9, "%ld", (long)old.value.tv_sec);
	EXPECT("value_fires", wait_sig(SIGUSR1, &si, 2000), SIGUSR1);
	CHECK("value_info", si.code == SI_TIMER_CODE && si.timer.value == 0x1234 && si.timer.overrun == 0,
	      "code %d value %#lx overrun %d", si.code, si.timer.value, si.timer.overrun);
	raw(SYS_timer_gettime, b, (long)&cur, 0, 0, 0, 0);
	CHECK("one_shot_disarmed", cur.value.tv_sec == 0 && cur.value.tv_nsec == 0, "%ld", cur.value.tv_nsec);

	/* Overruns: a 1 ms period while the signal stays blocked. */
	settime(b, 0, 0, 1000000, 0, 1000000, NULL);
	struct timespec nap = {0, 60000000};
	nanosleep(&nap, NULL);
	EXPECT("overrun_fires", wait_sig(SIGUSR1, &si, 2000), SIGUSR1);
	long ovr = raw(SYS_timer_getoverrun, b, 0, 0, 0, 0, 0);
	CHECK("overrun_counted", si.timer.overrun >= 20 && ovr == si.timer.overrun, "si_overrun %d getoverrun %ld",
	      si.timer.overrun, ovr);
	settime(b, 0, 0, 0, 0, 0, NULL);
	wait_sig(SIGUSR1, &si, 0);
	/* An absolute time in the past fires at once. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	EXPECT("abstime_past", settime(b, TIMER_ABSTIME, now.tv_sec - 5, 0, 0, 0, NULL), 0);
	EXPECT("abstime_fires", wait_sig(SIGUSR1, &si, 1000), SIGUSR1);
	EXPECT("settime_bad_nsec", settime(b, 0, 0, 1000000000, 0, 0, NULL), -EINVAL);
	EXPECT("settime_negative", settime(b, 0, -1, 0, 0, 0, NULL), -EINVAL);
	EXPECT("settime_bad_id", settime(9999, 0, 1, 0, 0, 0, NULL), -EINVAL);
	EXPECT("gettime_bad_id", raw(SYS_timer_gettime, 9999, (long)&cur, 0, 0, 0, 0), -EINVAL);
	EXPECT("getoverrun_bad_id", raw(SYS_timer_getoverrun, 9999, 0, 0, 0, 0, 0), -EINVAL);
	raw(SYS_timer_delete, b, 0, 0, 0, 0, 0);
	unblock(SIGUSR1);

	/* SIGEV_NONE: nothing is sent, the time still runs down. */
	struct ksigevent none = {.notify = SIGEV_NONE};
	int c = create(CLOCK_MONOTONIC, &none);
	settime(c, 0, 0, 200000000, 0, 0, NULL);
	nanosleep(&(struct timespec){0, 50000000}, NULL);
	raw(SYS_timer_gettime, c, (long)&cur, 0, 0, 0, 0);
	CHECK("none_runs_down", cur.value.tv_sec == 0 && cur.value.tv_nsec > 0 && cur.value.tv_nsec <= 150000000,
	      "%ld", cur.value.tv_nsec);
	raw(SYS_timer_delete, c, 0, 0, 0, 0, 0);

	/* SIGEV_THREAD_ID: to this thread. */
	block(SIGUSR2);
	struct ksigevent th = {.value = 7, .signo = SIGUSR2, .notify = 4 /* SIGEV_THREAD_ID */,
	                       .tid = (int)raw(SYS_gettid, 0, 0, 0, 0, 0, 0)};
	int d = create(CLOCK_BOOTTIME, &th);
	CHECK("create_thread_id", d >= 0, "%d", d);
	settime(d, 0, 0, 2000000, 0, 0, NULL);
	EXPECT("thread_id_fires", wait_sig(SIGUSR2, &si, 2000), SIGUSR2);
	raw(SYS_timer_delete, d, 0, 0, 0, 0, 0);
	unblock(SIGUSR2);

	/* Re-arming many times (the sentry drops the stale expiries): the
	 * last setting is the one that fires. */
	block(SIGUSR1);
	struct ksigevent many = {.value = 9, .signo = SIGUSR1, .notify = SIGEV_SIGNAL};
	int e = create(CLOCK_MONOTONIC, &many);
	for (int i = 0; i < 20000; i++)
		settime(e, 0, 1000 + i, 0, 0, 0, NULL);
	settime(e, 0, 0, 1000000, 0, 0, NULL);
	EXPECT("rearm_many_fires", wait_sig(SIGUSR1, &si, 2000), SIGUSR1);
	EXPECT("rearm_many_once", wait_sig(SIGUSR1, &si, 50), -EAGAIN);
	raw(SYS_timer_delete, e, 0, 0, 0, 0, 0);
	unblock(SIGUSR1);

	/* A period of a nanosecond: overruns pile up, nothing spins. */
	block(SIGUSR1);
	int f = create(CLOCK_MONOTONIC, &many);
	settime(f, 0, 0, 1, 0, 1, NULL);
	nanosleep(&(struct timespec){0, 50000000}, NULL);
	EXPECT("tiny_period_fires", wait_sig(SIGUSR1, &si, 1000), SIGUSR1);
	CHECK("tiny_period_overruns", si.timer.overrun > 1000, "si_overrun %d", si.timer.overrun);
	raw(SYS_timer_delete, f, 0, 0, 0, 0, 0);
	wait_sig(SIGUSR1, &si, 0);
	unblock(SIGUSR1);

	/* Refusals. */
	int id;
	EXPECT("create_bad_clock", raw(SYS_timer_create, 99, 0, (long)&id, 0, 0, 0), -EINVAL);
	struct ksigevent bad = {.signo = SIGUSR1, .notify = 99};
	EXPECT("create_bad_notify", raw(SYS_timer_create, CLOCK_MONOTONIC, (long)&bad, (long)&id, 0, 0, 0), -EINVAL);
	bad = (struct ksigevent){.signo = 0, .notify = SIGEV_SIGNAL};
	EXPECT("create_signal_zero", raw(SYS_timer_create, CLOCK_MONOTONIC, (long)&bad, (long)&id, 0, 0, 0), -EINVAL);
	bad = (struct ksigevent){.signo = 65, .notify = SIGEV_SIGNAL};
	EXPECT("create_signal_65", raw(SYS_timer_create, CLOCK_MONOTONIC, (long)&bad, (long)&id, 0, 0, 0), -EINVAL);
	bad = (struct ksigevent){.signo = SIGUSR1, .notify = 4, .tid = 999999};
	EXPECT("create_bad_tid", raw(SYS_timer_create, CLOCK_MONOTONIC, (long)&bad, (long)&id, 0, 0, 0), -EINVAL);
	EXPECT("create_efault", raw(SYS_timer_create, CLOCK_MONOTONIC, 8, (long)&id, 0, 0, 0), -EFAULT);
}

/* A timer survives execve (alarm) or does not (POSIX timers); a forked
 * child has none. */
static void across(const char *self) {
	raw(SYS_alarm, 100, 0, 0, 0, 0, 0);
	pid_t c = fork();
	if (c == 0)
		_exit(raw(SYS_alarm, 0, 0, 0, 0, 0, 0) == 0 ? 0 : 1);
	int st;
	waitpid(c, &st, 0);
	CHECK("fork_no_alarm", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	c = fork();
	if (c == 0) {
		raw(SYS_alarm, 100, 0, 0, 0, 0, 0);
		int id = create(CLOCK_MONOTONIC, NULL);
		(void)id;
		execl(self, self, "after-exec", (char *)NULL);
		_exit(9);
	}
	waitpid(c, &st, 0);
	CHECK("exec_keeps_alarm_drops_timers", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	raw(SYS_alarm, 0, 0, 0, 0, 0, 0);
}

static void queued(void) {
	block(SIGRTMIN);
	struct ksiginfo out = {0}, si;
	out.code = SI_QUEUE_CODE;
	out.rt.pid = getpid();
	out.rt.value = 0xabc;
	out.signo = 12345; /* replaced by the signal argument */
	EXPECT("sigqueueinfo_self", raw(SYS_rt_sigqueueinfo, getpid(), SIGRTMIN, (long)&out, 0, 0, 0), 0);
	out.rt.value = 0xdef;
	raw(SYS_rt_sigqueueinfo, getpid(), SIGRTMIN, (long)&out, 0, 0, 0);
	EXPECT("sigqueueinfo_takes", wait_sig(SIGRTMIN, &si, 1000), SIGRTMIN);
	CHECK("sigqueueinfo_value", si.signo == SIGRTMIN && si.code == SI_QUEUE_CODE && si.rt.value == 0xabc,
	      "signo %d code %d value %#lx", si.signo, si.code, si.rt.value);
	wait_sig(SIGRTMIN, &si, 1000);
	CHECK("sigqueueinfo_queued_in_order", si.rt.value == 0xdef, "%#lx", si.rt.value);
	out.code = 0; /* SI_USER: only towards oneself */
	EXPECT("sigqueueinfo_self_si_user", raw(SYS_rt_sigqueueinfo, getpid(), SIGRTMIN, (long)&out, 0, 0, 0), 0);
	wait_sig(SIGRTMIN, &si, 1000);
	EXPECT("tgsigqueueinfo_self",
	       raw(SYS_rt_tgsigqueueinfo, getpid(), raw(SYS_gettid, 0, 0, 0, 0, 0, 0), SIGRTMIN, (long)&out, 0, 0), 0);
	EXPECT("tgsigqueueinfo_takes", wait_sig(SIGRTMIN, &si, 1000), SIGRTMIN);
	pid_t c = fork();
	if (c == 0) {
		struct ksiginfo in;
		_exit(wait_sig(SIGRTMIN, &in, 2000) == SIGRTMIN && in.rt.value == 0x77 ? 0 : 1);
	}
	out.code = 0;
	EXPECT("sigqueueinfo_other_si_user", raw(SYS_rt_sigqueueinfo, c, SIGRTMIN, (long)&out, 0, 0, 0), -EPERM);
	out.code = SI_KERNEL_CODE;
	EXPECT("sigqueueinfo_other_si_kernel", raw(SYS_rt_sigqueueinfo, c, SIGRTMIN, (long)&out, 0, 0, 0), -EPERM);
	out.code = -6; /* SI_TKILL */
	EXPECT("sigqueueinfo_other_si_tkill", raw(SYS_rt_sigqueueinfo, c, SIGRTMIN, (long)&out, 0, 0, 0), -EPERM);
	out.code = SI_QUEUE_CODE;
	out.rt.value = 0x77;
	EXPECT("sigqueueinfo_other", raw(SYS_rt_sigqueueinfo, c, SIGRTMIN, (long)&out, 0, 0, 0), 0);
	int st;
	waitpid(c, &st, 0);
	CHECK("sigqueueinfo_other_received", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	EXPECT("sigqueueinfo_efault", raw(SYS_rt_sigqueueinfo, getpid(), SIGRTMIN, 8, 0, 0, 0), -EFAULT);
	EXPECT("sigqueueinfo_no_process", raw(SYS_rt_sigqueueinfo, 999999, SIGRTMIN, (long)&out, 0, 0, 0), -ESRCH);
	EXPECT("sigqueueinfo_bad_signal", raw(SYS_rt_sigqueueinfo, getpid(), 65, (long)&out, 0, 0, 0), -EINVAL);
	EXPECT("tgsigqueueinfo_bad_ids", raw(SYS_rt_tgsigqueueinfo, 0, 1, SIGRTMIN, (long)&out, 0, 0), -EINVAL);
	EXPECT("tgsigqueueinfo_wrong_group", raw(SYS_rt_tgsigqueueinfo, getpid() + 1, getpid(), SIGRTMIN, (long)&out, 0, 0),
	       -ESRCH);
	unblock(SIGRTMIN);
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "after-exec") == 0) {
		/* Timer 0 of the process before execve is gone; its alarm is
		 * not. */
		struct kitimerspec cur;
		long gone = raw(SYS_timer_gettime, 0, (long)&cur, 0, 0, 0, 0);
		long left = raw(SYS_alarm, 0, 0, 0, 0, 0, 0);
		return gone == -EINVAL && left > 90 && left <= 100 ? 0 : 1;
	}
	itimers();
	posix_timers();
	across("/proc/self/exe");
	queued();
	return 0;
}
