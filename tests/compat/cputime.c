/* CPU time: what a process spends computing shows as its user time in
 * getrusage, times and CLOCK_PROCESS_CPUTIME_ID; a child starts from zero;
 * a child's time (also after execve) becomes its parent's children's time
 * when it is waited for, and wait4 reports it. Thresholds are loose: only
 * the presence of the time is compared, not its amount. */
#include "compat.h"
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>

/* About 0.1-0.3 s of computing on the reference machines, no system
 * calls. */
static void burn(void) {
	volatile unsigned long x = 1;
	for (unsigned long i = 0; i < 250000000UL; i++)
		x = x * 2862933555777941757UL + 3037000493UL;
}

static long ms(struct timeval tv) {
	return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static volatile sig_atomic_t vt_hits, prof_hits;

static void on_vtalrm(int sig) {
	(void)sig;
	vt_hits++;
}

static void on_prof(int sig) {
	(void)sig;
	prof_hits++;
}

/* ITIMER_VIRTUAL and ITIMER_PROF count CPU time: they fire while the
 * process computes, not while it sleeps; a child has none of them. */
static void cpu_itimers(void) {
	signal(SIGVTALRM, on_vtalrm);
	signal(SIGPROF, on_prof);
	struct itimerval v = {{0, 0}, {10, 0}}, o;
	EXPECT("setitimer_virtual", setitimer(ITIMER_VIRTUAL, &v, NULL), 0);
	getitimer(ITIMER_VIRTUAL, &o);
	/* Linux rounds CPU-time timers to its tick: up to 10.01 s. */
	CHECK("getitimer_virtual", o.it_value.tv_sec == 9 || (o.it_value.tv_sec == 10 && o.it_value.tv_usec < 10000),
	      "%ld.%06ld", (long)o.it_value.tv_sec, (long)o.it_value.tv_usec);
	pid_t c = fork();
	if (c == 0) {
		struct itimerval mine;
		getitimer(ITIMER_VIRTUAL, &mine);
		_exit(mine.it_value.tv_sec == 0 && mine.it_value.tv_usec == 0 ? 0 : 1);
	}
	int st;
	waitpid(c, &st, 0);
	CHECK("fork_no_virtual_timer", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	/* 50 ms of CPU time: sleeping does not use it, computing does. */
	v = (struct itimerval){{0, 0}, {0, 50000}};
	setitimer(ITIMER_VIRTUAL, &v, NULL);
	struct timespec nap = {0, 200000000};
	nanosleep(&nap, NULL);
	CHECK("virtual_not_while_sleeping", vt_hits == 0, "%d signals", (int)vt_hits);
	burn();
	CHECK("virtual_fires_once", vt_hits == 1, "%d signals", (int)vt_hits);
	getitimer(ITIMER_VIRTUAL, &o);
	CHECK("virtual_disarmed", o.it_value.tv_sec == 0 && o.it_value.tv_usec == 0, "%ld", (long)o.it_value.tv_usec);
	v = (struct itimerval){{0, 20000}, {0, 20000}};
	EXPECT("setitimer_prof", setitimer(ITIMER_PROF, &v, NULL), 0);
	burn();
	struct itimerval zero = {{0, 0}, {0, 0}};
	setitimer(ITIMER_PROF, &zero, &o);
	CHECK("prof_fires_periodically", prof_hits >= 2, "%d signals", (int)prof_hits);
	CHECK("prof_old_interval", o.it_interval.tv_usec == 20000, "%ld", (long)o.it_interval.tv_usec);
	signal(SIGVTALRM, SIG_DFL);
	signal(SIGPROF, SIG_DFL);
}

/* A POSIX timer on the process CPU clock: it does not run while the
 * process sleeps, it expires while it computes. */
static void cpu_clock_timer(void) {
	struct {
		unsigned long value;
		int signo, notify, tid, pad[11];
	} ev = {.value = 5, .signo = SIGUSR1, .notify = SIGEV_SIGNAL};
	int id = -1;
	sigset_t b;
	sigemptyset(&b);
	sigaddset(&b, SIGUSR1);
	sigprocmask(SIG_BLOCK, &b, NULL);
	EXPECT("timer_create_process_cputime",
	       raw(SYS_timer_create, CLOCK_PROCESS_CPUTIME_ID, (long)&ev, (long)&id, 0, 0, 0), 0);
	struct {
		struct timespec interval, value;
	} spec = {{0, 0}, {0, 50000000}}, cur;
	EXPECT("timer_settime_cpu", raw(SYS_timer_settime, id, 0, (long)&spec, 0, 0, 0), 0);
	struct timespec nap = {0, 150000000}, none = {0, 0};
	nanosleep(&nap, NULL);
	siginfo_t si;
	CHECK("cpu_timer_not_while_sleeping", sigtimedwait(&b, &si, &none) < 0 && errno == EAGAIN, "a signal came");
	raw(SYS_timer_gettime, id, (long)&cur, 0, 0, 0, 0);
	CHECK("cpu_timer_gettime", cur.value.tv_sec == 0 && cur.value.tv_nsec > 0 && cur.value.tv_nsec <= 50000000,
	      "%ld", cur.value.tv_nsec);
	burn();
	struct timespec wait = {2, 0};
	int got = sigtimedwait(&b, &si, &wait);
	CHECK("cpu_timer_fires_computing", got == SIGUSR1 && si.si_code == SI_TIMER, "got %d code %d", got, si.si_code);
	raw(SYS_timer_delete, id, 0, 0, 0, 0, 0);
	sigprocmask(SIG_UNBLOCK, &b, NULL);
}

static long thread_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long other_start_ms, other_end_ms;

static void *burner(void *arg) {
	(void)arg;
	other_start_ms = thread_ms();
	burn();
	other_end_ms = thread_ms();
	return NULL;
}

/* CLOCK_THREAD_CPUTIME_ID, RUSAGE_THREAD and the clocks of
 * pthread_getcpuclockid/clock_getcpuclockid count one thread's time. */
static void thread_clocks(void) {
	long before = thread_ms();
	burn();
	long mine = thread_ms();
	CHECK("thread_cputime_own_work", mine - before >= 50, "%ld ms (was %ld)", mine, before);
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	CHECK("rusage_thread_user", ms(ru.ru_utime) >= 50, "%ld ms", ms(ru.ru_utime));
	pthread_t th;
	pthread_create(&th, NULL, burner, NULL);
	pthread_join(th, NULL);
	/* A new thread starts from zero although its process has computed. */
	CHECK("new_thread_from_zero", other_start_ms < 30, "%ld ms", other_start_ms);
	CHECK("other_thread_work", other_end_ms - other_start_ms >= 50, "%ld ms", other_end_ms - other_start_ms);
	long after = thread_ms();
	CHECK("not_counting_other_thread", after - mine < 30, "%ld ms (was %ld)", after, mine);
	clockid_t c;
	EXPECT("pthread_getcpuclockid", pthread_getcpuclockid(pthread_self(), &c), 0);
	struct timespec ts;
	EXPECT("own_thread_clock", clock_gettime(c, &ts), 0);
	CHECK("own_thread_clock_value", ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= after, "%ld.%09ld", (long)ts.tv_sec,
	      ts.tv_nsec);
	EXPECT("clock_getcpuclockid", clock_getcpuclockid(0, &c), 0);
	EXPECT("process_clock", clock_gettime(c, &ts), 0);
	CHECK("process_clock_value", ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= 2 * 50, "%ld.%09ld", (long)ts.tv_sec,
	      ts.tv_nsec);
	EXPECT("clock_getcpuclockid_self_pid", clock_getcpuclockid(getpid(), &c), 0);
	EXPECT("process_clock_by_pid", clock_gettime(c, &ts), 0);
	/* Encoded ids: ~pid << 3 | thread << 2 | which. */
	EXPECT("thread_clock_no_such_thread", clock_gettime((clockid_t)((~999999u << 3) | 6), &ts) ? -errno : 0,
	       -EINVAL);
	EXPECT("cpu_clock_bad_which", clock_gettime((clockid_t)((~0u << 3) | 3), &ts) ? -errno : 0, -EINVAL);
	EXPECT("thread_virt_clock", clock_gettime((clockid_t)((~0u << 3) | 5), &ts), 0);
	EXPECT("getres_thread_sched", clock_getres(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	EXPECT("getres_thread_sched_ns", ts.tv_nsec, 1);
	EXPECT("getres_process_prof", clock_getres((clockid_t)((~0u << 3) | 0), &ts), 0);
	CHECK("getres_process_prof_tick", ts.tv_sec == 0 && ts.tv_nsec > 1, "%ld", ts.tv_nsec);
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "burn") == 0) {
		burn();
		return 0;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long before = ms(ru.ru_utime);
	burn();
	getrusage(RUSAGE_SELF, &ru);
	CHECK("getrusage_self_user", ms(ru.ru_utime) - before >= 50, "user %ld ms (was %ld)", ms(ru.ru_utime), before);
	struct tms tm;
	times(&tm);
	CHECK("times_user", tm.tms_utime >= 5, "%ld ticks", (long)tm.tms_utime);
	struct timespec cpu;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	CHECK("process_cputime", cpu.tv_sec * 1000 + cpu.tv_nsec / 1000000 >= 50, "%ld.%09ld", (long)cpu.tv_sec,
	      cpu.tv_nsec);
	getrusage(RUSAGE_CHILDREN, &ru);
	CHECK("no_children_yet", ms(ru.ru_utime) == 0, "%ld ms", ms(ru.ru_utime));

	pid_t c = fork();
	if (c == 0) {
		struct rusage mine;
		getrusage(RUSAGE_SELF, &mine);
		/* A child's times start from zero. */
		if (ms(mine.ru_utime) > 30)
			_exit(1);
		burn();
		_exit(0);
	}
	int st;
	struct rusage child;
	memset(&child, 0, sizeof child);
	EXPECT("wait4_child", wait4(c, &st, 0, &child), c);
	CHECK("child_started_at_zero", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	CHECK("wait4_rusage_user", ms(child.ru_utime) >= 50, "%ld ms", ms(child.ru_utime));
	getrusage(RUSAGE_CHILDREN, &ru);
	long children = ms(ru.ru_utime);
	CHECK("children_user", children >= 50, "%ld ms", children);
	times(&tm);
	CHECK("times_children_user", tm.tms_cutime >= 5, "%ld ticks", (long)tm.tms_cutime);

	/* The time of a program the child executed counts too. */
	c = fork();
	if (c == 0) {
		execl("/proc/self/exe", "cputime", "burn", (char *)NULL);
		_exit(9);
	}
	waitpid(c, &st, 0);
	getrusage(RUSAGE_CHILDREN, &ru);
	CHECK("children_after_exec", ms(ru.ru_utime) - children >= 50, "%ld ms (was %ld)", ms(ru.ru_utime), children);
	EXPECT("getrusage_bad_who", getrusage(7, &ru) < 0 ? -errno : 0, -EINVAL);
	cpu_itimers();
	cpu_clock_timer();
	thread_clocks();
	return 0;
}
