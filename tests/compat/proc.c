/* Processes: fork, exit statuses and waits, zombies, reparenting to a
 * subreaper, exec (image replaced, close-on-exec), vfork, threads,
 * copy-on-write isolation, shared anonymous memory, MADV_DONTFORK and
 * MADV_WIPEONFORK, pidfds, SIGCHLD. The program makes itself a
 * subreaper so that orphans come back to it natively and in the sandbox
 * alike. */
#include "compat.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif

static char self_exe[4096];

/* The exec helper: "exec-check FD_KEPT FD_CLOEXEC" reports which
 * descriptors survived in its exit status. */
static int exec_check(char **argv) {
	int kept = atoi(argv[2]), gone = atoi(argv[3]);
	int st = 0;
	if (fcntl(kept, F_GETFD) >= 0)
		st |= 1;
	if (fcntl(gone, F_GETFD) < 0 && errno == EBADF)
		st |= 2;
	return 40 + st;
}

static int wait_status(pid_t p) {
	int st = -1;
	if (waitpid(p, &st, 0) != p)
		return -1;
	return st;
}

static void statuses(void) {
	pid_t p = fork();
	if (p == 0)
		_exit(42);
	int st = wait_status(p);
	CHECK("exit_code", WIFEXITED(st) && WEXITSTATUS(st) == 42, "status %#x", st);

	p = fork();
	if (p == 0) {
		raise(SIGTERM);
		_exit(1);
	}
	st = wait_status(p);
	CHECK("killed_by_signal", WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM && !WCOREDUMP(st), "status %#x", st);

	p = fork();
	if (p == 0) {
		struct rlimit r = {0, 0};
		setrlimit(RLIMIT_CORE, &r);
		abort();
	}
	st = wait_status(p);
	CHECK("core_status", WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x", st);

	p = fork();
	if (p == 0)
		_exit(getppid() == (pid_t)atoi(getenv("PROC_PARENT")) ? 7 : 8);
	st = wait_status(p);
	CHECK("child_getppid", WIFEXITED(st) && WEXITSTATUS(st) == 7, "status %#x", st);

	EXPECT("wait_no_children", waitpid(-1, NULL, 0) < 0 ? -errno : 0, -ECHILD);
	EXPECT("wait_nohang_no_children", waitpid(-1, NULL, WNOHANG) < 0 ? -errno : 0, -ECHILD);
	EXPECT("wait_bad_options", RAW4(SYS_wait4, -1, 0, 0x10000, 0), -EINVAL);

	/* WNOHANG while the child runs, then a blocking wait. */
	int fds[2];
	pipe(fds);
	p = fork();
	if (p == 0) {
		char c;
		close(fds[1]);
		read(fds[0], &c, 1);
		_exit(5);
	}
	close(fds[0]);
	EXPECT("wnohang_running", waitpid(p, NULL, WNOHANG), 0);
	write(fds[1], "x", 1);
	close(fds[1]);
	st = wait_status(p);
	CHECK("wait_after_wnohang", WIFEXITED(st) && WEXITSTATUS(st) == 5, "status %#x", st);

	/* A specific pid among several, in any order. */
	pid_t a = fork();
	if (a == 0)
		_exit(1);
	pid_t b = fork();
	if (b == 0)
		_exit(2);
	st = wait_status(b);
	int st2 = wait_status(a);
	CHECK("wait_specific", WEXITSTATUS(st) == 2 && WEXITSTATUS(st2) == 1, "%#x %#x", st, st2);
}

static void zombies_and_waitid(void) {
	pid_t p = fork();
	if (p == 0)
		_exit(3);
	/* Until reaped it exists (kill 0 works) and WNOWAIT leaves it. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int r = waitid(P_PID, p, &si, WEXITED | WNOWAIT);
	CHECK("waitid_nowait", r == 0 && si.si_pid == p && si.si_code == CLD_EXITED && si.si_status == 3,
	      "r %d pid %d code %d status %d", r, si.si_pid, si.si_code, si.si_status);
	EXPECT("zombie_exists", kill(p, 0), 0);
	memset(&si, 0, sizeof si);
	r = waitid(P_ALL, 0, &si, WEXITED);
	CHECK("waitid_reaps", r == 0 && si.si_pid == p && si.si_signo == SIGCHLD, "r %d pid %d", r, si.si_pid);
	EXPECT("reaped_gone", kill(p, 0) < 0 ? -errno : 0, -ESRCH);
	EXPECT("waitid_no_flags", waitid(P_ALL, 0, &si, 0) < 0 ? -errno : 0, -EINVAL);

	/* waitid WNOHANG with nothing to report zeroes si_pid. */
	int fds[2];
	pipe(fds);
	p = fork();
	if (p == 0) {
		char c;
		close(fds[1]);
		read(fds[0], &c, 1);
		_exit(0);
	}
	close(fds[0]);
	si.si_pid = 12345;
	r = waitid(P_PID, p, &si, WEXITED | WNOHANG);
	CHECK("waitid_nohang", r == 0 && si.si_pid == 0, "r %d pid %d", r, si.si_pid);
	close(fds[1]);
	memset(&si, 0, sizeof si);
	waitid(P_PID, p, &si, WEXITED);
	CHECK("waitid_after_nohang", si.si_pid == p && si.si_code == CLD_EXITED, "pid %d", si.si_pid);

	p = fork();
	if (p == 0) {
		raise(SIGKILL);
		_exit(0);
	}
	memset(&si, 0, sizeof si);
	waitid(P_PID, p, &si, WEXITED);
	CHECK("waitid_killed", si.si_code == CLD_KILLED && si.si_status == SIGKILL, "code %d status %d", si.si_code,
	      si.si_status);

	/* A process group of children. */
	p = fork();
	if (p == 0) {
		setpgid(0, 0);
		_exit(9);
	}
	setpgid(p, p);
	memset(&si, 0, sizeof si);
	r = waitid(P_PGID, p, &si, WEXITED);
	CHECK("waitid_pgid", r == 0 && si.si_pid == p && si.si_status == 9, "r %d", r);
}

static void reparenting(void) {
	/* A child forks a grandchild and exits: the grandchild comes to us
	 * (the subreaper). */
	int fds[2];
	pipe(fds);
	pid_t mid = fork();
	if (mid == 0) {
		pid_t g = fork();
		if (g == 0) {
			char c;
			close(fds[1]);
			read(fds[0], &c, 1); /* until the middle one is gone */
			_exit(getppid() == (pid_t)atoi(getenv("PROC_SELF")) ? 11 : 12);
		}
		_exit(0);
	}
	close(fds[0]);
	int st = wait_status(mid);
	write(fds[1], "x", 1);
	close(fds[1]);
	int gst;
	pid_t g = wait(&gst);
	CHECK("orphan_reparented", st == 0 && g > 0 && WIFEXITED(gst) && WEXITSTATUS(gst) == 11, "st %#x gst %#x", st,
	      gst);

	/* PR_SET_PDEATHSIG: the grandchild is told when its parent dies. */
	pipe(fds);
	mid = fork();
	if (mid == 0) {
		pid_t g = fork();
		if (g == 0) {
			prctl(PR_SET_PDEATHSIG, SIGUSR1);
			close(fds[0]);
			write(fds[1], "r", 1);
			for (;;)
				pause();
		}
		char c;
		close(fds[1]);
		read(fds[0], &c, 1);
		_exit(0);
	}
	close(fds[1]);
	wait_status(mid);
	g = wait(&gst);
	close(fds[0]);
	CHECK("pdeathsig", WIFSIGNALED(gst) && WTERMSIG(gst) == SIGUSR1, "gst %#x", gst);

	int on = -1;
	prctl(PR_GET_CHILD_SUBREAPER, &on);
	EXPECT("subreaper_get", on, 1);
}

static void exec_cloexec(void) {
	int kept = open("/dev/null", O_RDONLY);
	int gone = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t p = fork();
	if (p == 0) {
		char a[16], b[16];
		snprintf(a, sizeof a, "%d", kept);
		snprintf(b, sizeof b, "%d", gone);
		char *argv[] = {self_exe, "exec-check", a, b, NULL};
		execv(self_exe, argv);
		_exit(99);
	}
	int st = wait_status(p);
	CHECK("exec_cloexec", WIFEXITED(st) && WEXITSTATUS(st) == 43, "status %#x", st);
	close(kept);
	close(gone);
}

static volatile int vfork_flag;

static void vforks(void) {
	vfork_flag = 0;
	pid_t p = vfork();
	if (p == 0) {
		vfork_flag = 1; /* shared memory until _exit */
		_exit(6);
	}
	int st = wait_status(p);
	CHECK("vfork_shares_memory", vfork_flag == 1 && WEXITSTATUS(st) == 6, "flag %d st %#x", vfork_flag, st);

	p = vfork();
	if (p == 0) {
		char *argv[] = {self_exe, "exit-with", "21", NULL};
		execv(self_exe, argv);
		_exit(99);
	}
	st = wait_status(p);
	CHECK("vfork_exec", WIFEXITED(st) && WEXITSTATUS(st) == 21, "status %#x", st);
}

static void *thread_main(void *arg) {
	*(long *)arg = syscall(SYS_gettid);
	return arg;
}

static void *exec_thread(void *arg) {
	(void)arg;
	char *argv[] = {self_exe, "exec-pid", NULL};
	execv(self_exe, argv);
	return NULL;
}

static void threads(void) {
	long tid = 0;
	pthread_t th;
	void *ret;
	int r = pthread_create(&th, NULL, thread_main, &tid);
	r |= pthread_join(th, &ret);
	CHECK("thread_runs", r == 0 && ret == &tid && tid != getpid() && tid > 0, "r %d tid %ld", r, tid);

	/* execve from a thread other than the leader: the process keeps its
	 * pid, the other threads end. */
	pid_t p = fork();
	if (p == 0) {
		pthread_t t2;
		pthread_create(&t2, NULL, exec_thread, NULL);
		for (;;)
			pause();
	}
	int st = wait_status(p);
	CHECK("exec_from_thread", WIFEXITED(st) && WEXITSTATUS(st) == 30, "status %#x", st);
}

static void memory(void) {
	/* Copy-on-write both ways, in small and large memory. */
	size_t big = 8 << 20;
	char *m = malloc(big);
	memset(m, 'p', big);
	int shared_val = 1;
	int *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	*sh = 100;
	int fds[2];
	pipe(fds);
	pid_t p = fork();
	if (p == 0) {
		char c;
		int ok = m[0] == 'p' && m[big - 1] == 'p' && shared_val == 1;
		memset(m, 'c', big);
		shared_val = 2;
		*sh = 200;
		close(fds[1]);
		read(fds[0], &c, 1); /* the parent wrote */
		ok = ok && m[12345] == 'c' && *sh == 300;
		_exit(ok ? 0 : 1);
	}
	close(fds[0]);
	/* Until the child wrote *sh, wait. */
	for (int i = 0; i < 5000 && *sh != 200; i++)
		usleep(1000);
	int seen_child = *sh == 200;
	m[12345] = 'P';
	*sh = 300;
	write(fds[1], "x", 1);
	close(fds[1]);
	int st = wait_status(p);
	CHECK("cow_isolation", WIFEXITED(st) && WEXITSTATUS(st) == 0 && m[0] == 'p' && m[12345] == 'P' && shared_val == 1,
	      "status %#x m0 %c", st, m[0]);
	CHECK("shared_anon_across_fork", seen_child, "child's write not seen");
	free(m);
	munmap(sh, 4096);

	char *dontfork = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *wipe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dontfork[0] = 'd';
	wipe[0] = 'w';
	EXPECT("madv_dontfork", madvise(dontfork, 4096, MADV_DONTFORK), 0);
	EXPECT("madv_wipeonfork", madvise(wipe, 4096, MADV_WIPEONFORK), 0);
	char *sharedm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	EXPECT("madv_wipeonfork_shared", madvise(sharedm, 4096, MADV_WIPEONFORK) < 0 ? -errno : 0, -EINVAL);
	p = fork();
	if (p == 0) {
		if (wipe[0] != 0)
			_exit(2);
		(void)*(volatile char *)dontfork; /* faults: not in the child */
		_exit(0);
	}
	st = wait_status(p);
	CHECK("dontfork_and_wipe", WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV && wipe[0] == 'w' && dontfork[0] == 'd',
	      "status %#x", st);
}

static volatile sig_atomic_t chld_pid, chld_status, chld_code;

static void on_chld(int sig, siginfo_t *si, void *uc) {
	(void)sig;
	(void)uc;
	chld_pid = si->si_pid;
	chld_status = si->si_status;
	chld_code = si->si_code;
}

static void sigchld(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGCHLD, &sa, NULL);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	pid_t p = fork();
	if (p == 0)
		_exit(17);
	/* Wait for the signal with it unblocked. */
	while (chld_pid == 0)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK("sigchld_info", chld_pid == p && chld_status == 17 && chld_code == CLD_EXITED, "pid %d status %d code %d",
	      (int)chld_pid, (int)chld_status, (int)chld_code);
	wait_status(p);

	/* SIGCHLD ignored: children are reaped at once. */
	signal(SIGCHLD, SIG_IGN);
	p = fork();
	if (p == 0)
		_exit(0);
	int r = waitpid(p, NULL, 0);
	EXPECT("sigchld_ignored_reaps", r < 0 ? -errno : r, -ECHILD);
	signal(SIGCHLD, SIG_DFL);
}

static int child_fn(void *arg) {
	(void)arg;
	return 0;
}

static void pidfds(void) {
	pid_t p = fork();
	if (p == 0) {
		usleep(20000);
		_exit(4);
	}
	int pfd = syscall(SYS_pidfd_open, p, 0);
	CHECK("pidfd_open", pfd >= 0, "%s", strerror(errno));
	struct pollfd pf = {pfd, POLLIN, 0};
	int r = poll(&pf, 1, 5000);
	CHECK("pidfd_poll_exit", r == 1 && (pf.revents & POLLIN), "r %d revents %#x", r, pf.revents);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	r = waitid(P_PIDFD, pfd, &si, WEXITED);
	CHECK("waitid_pidfd", r == 0 && si.si_pid == p && si.si_status == 4, "r %d pid %d", r, si.si_pid);
	close(pfd);
	EXPECT("pidfd_open_bad_flags", syscall(SYS_pidfd_open, getpid(), 1) < 0 ? -errno : 0, -EINVAL);
	EXPECT("pidfd_open_gone", syscall(SYS_pidfd_open, p, 0) < 0 ? -errno : 0, -ESRCH);

	/* clone(CLONE_PIDFD) and a child with no exit signal (__WCLONE). */
	int cpfd = -1;
	static char stack[65536];
	p = clone(child_fn, stack + sizeof stack, CLONE_PIDFD, NULL, &cpfd);
	CHECK("clone_pidfd", p > 0 && cpfd >= 0, "p %d fd %d", p, cpfd);
	EXPECT("wait_clone_child_needs_wall", waitpid(p, NULL, 0) < 0 ? -errno : 0, -ECHILD);
	int st;
	EXPECT("wait_wall", waitpid(p, &st, __WALL), p);
	close(cpfd);
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "exec-check") == 0)
		return exec_check(argv);
	if (argc > 2 && strcmp(argv[1], "exit-with") == 0)
		return atoi(argv[2]);
	if (argc > 1 && strcmp(argv[1], "exec-pid") == 0)
		return getpid() == syscall(SYS_gettid) ? 30 : 31;
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (n < 0)
		return 1;
	self_exe[n] = 0;
	char buf[32];
	snprintf(buf, sizeof buf, "%d", getpid());
	setenv("PROC_PARENT", buf, 1);
	setenv("PROC_SELF", buf, 1);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	statuses();
	zombies_and_waitid();
	reparenting();
	exec_cloexec();
	vforks();
	threads();
	memory();
	sigchld();
	pidfds();
	return 0;
}
