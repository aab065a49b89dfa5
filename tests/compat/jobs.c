/* Job control: stop signals stop the whole process, SIGCONT continues it,
 * the parent hears of both (SIGCHLD with CLD_STOPPED/CLD_CONTINUED unless
 * SA_NOCLDSTOP, wait with WUNTRACED/WCONTINUED, waitid WSTOPPED/WNOWAIT),
 * SIGKILL ends a stopped process, SIGTSTP does nothing to an orphaned
 * process group, and a call blocked across a stop goes on afterwards. */
#include "compat.h"
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

static volatile long *counters;

static void nap(long ms) {
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static void *spin(void *arg) {
	volatile long *c = arg;
	for (;;)
		(*c)++;
	return NULL;
}

/* A child in a process group of its own (so that the group is not
 * orphaned: its parent, this program, is in another group of the same
 * session), counting in two threads. */
static pid_t spinner(void) {
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0);
		pthread_t th;
		pthread_create(&th, NULL, spin, (void *)&counters[1]);
		spin((void *)&counters[0]);
	}
	setpgid(c, c);
	return c;
}

static int frozen(void) {
	long a0 = counters[0], a1 = counters[1];
	nap(60);
	return counters[0] == a0 && counters[1] == a1;
}

static int running(void) {
	long a0 = counters[0], a1 = counters[1];
	nap(60);
	return counters[0] != a0 && counters[1] != a1;
}

/* A process group whose only member has exited but is not reaped yet (a
 * zombie) still exists: another process of the session may join it (as a
 * shell's second pipeline command does when the first is already gone);
 * once the zombie is reaped, it is gone. */
static void zombie_group(void) {
	pid_t a = fork();
	if (a == 0) {
		setpgid(0, 0);
		_exit(0);
	}
	setpgid(a, a);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	EXPECT("zombie_leader", waitid(P_PID, a, &si, WEXITED | WNOWAIT), 0);
	pid_t b = fork();
	if (b == 0)
		_exit(setpgid(0, a) == 0 ? 0 : errno);
	int st = 0;
	waitpid(b, &st, 0);
	CHECK("join_group_of_zombie", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	waitpid(a, &st, 0);
	pid_t c = fork();
	if (c == 0)
		_exit(setpgid(0, a) == 0 ? 0 : errno);
	waitpid(c, &st, 0);
	CHECK("reaped_group_gone", WIFEXITED(st) && WEXITSTATUS(st) == EPERM, "status %#x", st);
}

static void stop_and_continue(void) {
	pid_t c = spinner();
	nap(30);
	int st = 0;
	EXPECT("kill_stop", kill(c, SIGSTOP), 0);
	EXPECT("wait_untraced", waitpid(c, &st, WUNTRACED), c);
	CHECK("wifstopped", WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP, "status %#x", st);
	CHECK("both_threads_stopped", frozen(), "counters moved");
	EXPECT("stop_reported_once", waitpid(c, &st, WUNTRACED | WNOHANG), 0);
	EXPECT("no_continue_yet", waitpid(c, &st, WCONTINUED | WNOHANG), 0);
	EXPECT("kill_cont", kill(c, SIGCONT), 0);
	EXPECT("wait_continued", waitpid(c, &st, WCONTINUED), c);
	CHECK("wifcontinued", WIFCONTINUED(st), "status %#x", st);
	CHECK("running_again", running(), "counters frozen");

	/* waitid: WSTOPPED with WNOWAIT leaves the report. */
	kill(c, SIGTSTP);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	EXPECT("waitid_stopped_nowait", waitid(P_PID, c, &si, WSTOPPED | WNOWAIT), 0);
	CHECK("waitid_stopped_info", si.si_code == CLD_STOPPED && si.si_status == SIGTSTP && si.si_pid == c,
	      "code %d status %d", si.si_code, si.si_status);
	memset(&si, 0, sizeof si);
	EXPECT("waitid_stopped", waitid(P_PID, c, &si, WSTOPPED | WNOHANG), 0);
	CHECK("waitid_stopped_again", si.si_code == CLD_STOPPED && si.si_pid == c, "code %d", si.si_code);
	memset(&si, 0, sizeof si);
	waitid(P_PID, c, &si, WSTOPPED | WNOHANG);
	CHECK("waitid_taken", si.si_pid == 0, "pid %d", si.si_pid);
	kill(c, SIGCONT);
	memset(&si, 0, sizeof si);
	EXPECT("waitid_continued", waitid(P_PID, c, &si, WCONTINUED), 0);
	CHECK("waitid_continued_info", si.si_code == CLD_CONTINUED && si.si_status == SIGCONT, "code %d status %d",
	      si.si_code, si.si_status);

	/* A stopped process can be killed. */
	kill(c, SIGSTOP);
	waitpid(c, &st, WUNTRACED);
	EXPECT("kill_stopped", kill(c, SIGKILL), 0);
	EXPECT("wait_killed", waitpid(c, &st, 0), c);
	CHECK("killed_while_stopped", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
}

static void parent_signals(void) {
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	pid_t c = spinner();
	struct timespec wait = {2, 0};
	siginfo_t si;
	kill(c, SIGSTOP);
	int got = sigtimedwait(&chld, &si, &wait);
	CHECK("sigchld_stopped", got == SIGCHLD && si.si_code == CLD_STOPPED && si.si_status == SIGSTOP && si.si_pid == c,
	      "got %d code %d status %d", got, si.si_code, si.si_status);
	kill(c, SIGCONT);
	got = sigtimedwait(&chld, &si, &wait);
	CHECK("sigchld_continued", got == SIGCHLD && si.si_code == CLD_CONTINUED && si.si_status == SIGCONT,
	      "got %d code %d status %d", got, si.si_code, si.si_status);
	/* SA_NOCLDSTOP: no SIGCHLD for either. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	kill(c, SIGSTOP);
	int st;
	waitpid(c, &st, WUNTRACED);
	struct timespec shortly = {0, 100000000};
	got = sigtimedwait(&chld, &si, &shortly);
	CHECK("nocldstop_quiet", got < 0 && errno == EAGAIN, "got %d", got);
	kill(c, SIGCONT);
	got = sigtimedwait(&chld, &si, &shortly);
	CHECK("nocldstop_quiet_continue", got < 0 && errno == EAGAIN, "got %d", got);
	/* Its exit is still reported. */
	kill(c, SIGKILL);
	got = sigtimedwait(&chld, &si, &wait);
	CHECK("nocldstop_exit_reported", got == SIGCHLD && si.si_code == CLD_KILLED, "got %d code %d", got, si.si_code);
	waitpid(c, &st, 0);
	sa.sa_flags = 0;
	sigaction(SIGCHLD, &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void orphaned_group(void) {
	/* A new session: its process group has no parent in the session, so
	 * SIGTSTP does nothing; SIGSTOP still stops it. */
	pid_t c = fork();
	if (c == 0) {
		setsid();
		spin((void *)&counters[0]);
	}
	nap(30);
	int st;
	kill(c, SIGTSTP);
	nap(30);
	EXPECT("orphaned_tstp_ignored", waitpid(c, &st, WUNTRACED | WNOHANG), 0);
	long a0 = counters[0];
	nap(60);
	CHECK("orphaned_still_runs", counters[0] != a0, "frozen");
	kill(c, SIGSTOP);
	EXPECT("orphaned_sigstop_stops", waitpid(c, &st, WUNTRACED), c);
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
}

static void blocked_call_goes_on(void) {
	int p[2];
	pipe(p);
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0);
		char b;
		ssize_t n = read(p[0], &b, 1);
		_exit(n == 1 && b == 'x' ? 0 : 10 + (n < 0 ? errno : 0));
	}
	setpgid(c, c);
	nap(30);
	int st;
	kill(c, SIGSTOP);
	waitpid(c, &st, WUNTRACED);
	kill(c, SIGCONT);
	nap(30);
	write(p[1], "x", 1);
	waitpid(c, &st, 0);
	CHECK("read_across_stop", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	close(p[0]);
	close(p[1]);
}

static void sleep_across_stop(void) {
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0);
		struct timespec t0, t1, req = {0, 300000000}, rem = {9, 9};
		clock_gettime(CLOCK_MONOTONIC, &t0);
		long r = raw(SYS_nanosleep, (long)&req, (long)&rem, 0, 0, 0, 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		/* Restarted to its first deadline: neither EINTR nor longer. */
		_exit(r == 0 && ms >= 290 && ms < 1000 ? 0 : r < 0 ? 10 : 11);
	}
	setpgid(c, c);
	nap(50);
	int st;
	kill(c, SIGSTOP);
	waitpid(c, &st, WUNTRACED);
	nap(50);
	kill(c, SIGCONT);
	waitpid(c, &st, 0);
	CHECK("nanosleep_across_stop", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	EXPECT("restart_syscall_nothing", raw(SYS_restart_syscall, 0, 0, 0, 0, 0, 0), -EINTR);
}

int main(void) {
	counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	stop_and_continue();
	parent_signals();
	orphaned_group();
	blocked_call_goes_on();
	sleep_across_stop();
	zombie_group();
	return 0;
}
