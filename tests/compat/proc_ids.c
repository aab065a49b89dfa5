/* Process groups, sessions, credentials and capabilities: setpgid and
 * setsid rules, signals to process groups, the set*id family and the
 * capability transitions that go with it, capget/capset, PR_SET_KEEPCAPS,
 * priorities. Each credential case runs in a child, so the program itself
 * stays root. */
#include "compat.h"

#include <grp.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

struct cap_header {
	unsigned version;
	int pid;
};
struct cap_data {
	unsigned effective, permitted, inheritable;
};
#define CAP_V1 0x19980330
#define CAP_V3 0x20080522

/* Low words of the effective and permitted sets. */
static void caps(unsigned *eff, unsigned *perm) {
	struct cap_header h = {CAP_V3, 0};
	struct cap_data d[2];
	memset(d, 0, sizeof d);
	RAW2(SYS_capget, &h, d);
	*eff = d[0].effective;
	*perm = d[0].permitted;
}

static int wait_code(pid_t p) {
	int st = -1;
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs the body in a child; reports its exit code as case `name` (0: ok,
 * otherwise the step that failed). */
#define IN_CHILD(name, ...)                                                    \
	do {                                                                   \
		pid_t _p = fork();                                             \
		if (_p == 0) {                                                 \
			__VA_ARGS__;                                           \
		}                                                              \
		int _c = wait_code(_p);                                        \
		CHECK(name, _c == 0, "child failed at step %d", _c);           \
	} while (0)

static void groups_and_sessions(void) {
	pid_t me = getpid();
	/* A child in its own group, then back in ours. */
	int fds[2];
	pipe(fds);
	pid_t c = fork();
	if (c == 0) {
		char x;
		close(fds[1]);
		read(fds[0], &x, 1);
		_exit(0);
	}
	close(fds[0]);
	EXPECT("setpgid_child", setpgid(c, c), 0);
	EXPECT("getpgid_child", getpgid(c), c);
	EXPECT("setpgid_back", setpgid(c, getpgrp()), 0);
	EXPECT("setpgid_no_group", setpgid(c, 999999) < 0 ? -errno : 0, -EPERM);
	EXPECT("setpgid_negative", setpgid(c, -1) < 0 ? -errno : 0, -EINVAL);
	EXPECT("setpgid_no_process", setpgid(999999, 999999) < 0 ? -errno : 0, -ESRCH);
	write(fds[1], "x", 1);
	close(fds[1]);
	wait_code(c);

	/* After the child executed: EACCES. */
	pipe(fds);
	c = fork();
	if (c == 0) {
		dup2(fds[0], 0);
		close(fds[1]);
		execl("/bin/busybox", "cat", NULL);
		execl("/usr/bin/cat", "cat", NULL);
		_exit(1);
	}
	close(fds[0]);
	usleep(100000);
	EXPECT("setpgid_after_exec", setpgid(c, c) < 0 ? -errno : 0, -EACCES);
	close(fds[1]);
	wait_code(c);

	/* setsid: a new session and group; not for a group leader. */
	IN_CHILD("setsid_child", {
		if (setsid() != getpid())
			_exit(1);
		if (getsid(0) != getpid() || getpgrp() != getpid())
			_exit(2);
		if (setsid() >= 0 || errno != EPERM)
			_exit(3);
		/* A session leader cannot change its group. */
		if (setpgid(0, 0) == 0 || errno != EPERM)
			_exit(4);
		_exit(0);
	});
	IN_CHILD("setsid_group_leader", {
		setpgid(0, 0);
		_exit(setsid() < 0 && errno == EPERM ? 0 : 1);
	});
	/* A child in another session cannot be moved. */
	pipe(fds);
	c = fork();
	if (c == 0) {
		char x;
		setsid();
		close(fds[1]);
		read(fds[0], &x, 1);
		_exit(0);
	}
	close(fds[0]);
	usleep(50000);
	EXPECT("setpgid_other_session", setpgid(c, c) < 0 ? -errno : 0, -EPERM);
	EXPECT("getsid_child", getsid(c), c);
	write(fds[1], "x", 1);
	close(fds[1]);
	wait_code(c);
	EXPECT("getsid_none", getsid(999999) < 0 ? -errno : 0, -ESRCH);
	EXPECT("getpgid_self", getpgid(0), getpgrp());
	(void)me;

	/* kill(-pgid) reaches every member; kill(0) our own group. */
	pid_t kids[2];
	pid_t leader = 0;
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			for (;;)
				pause();
		}
		if (i == 0)
			leader = kids[0];
		setpgid(kids[i], leader);
	}
	EXPECT("kill_pgrp", kill(-leader, SIGTERM), 0);
	int a = wait_code(kids[0]), b = wait_code(kids[1]);
	CHECK("kill_pgrp_reached", a == 128 + SIGTERM && b == 128 + SIGTERM, "%d %d", a, b);
	EXPECT("kill_pgrp_none", kill(-999999, SIGTERM) < 0 ? -errno : 0, -ESRCH);
}

static void credentials(void) {
	IN_CHILD("setuid_root_drops_all", {
		unsigned e, p;
		if (setgid(1000) || setgroups(0, NULL))
			_exit(1);
		if (setuid(1000))
			_exit(2);
		uid_t r, ef, s;
		getresuid(&r, &ef, &s);
		if (r != 1000 || ef != 1000 || s != 1000)
			_exit(3);
		caps(&e, &p);
		if (e != 0 || p != 0)
			_exit(4);
		if (setuid(0) == 0 || errno != EPERM)
			_exit(5);
		if (setgroups(0, NULL) == 0 || errno != EPERM)
			_exit(6);
		_exit(0);
	});
	IN_CHILD("seteuid_keeps_permitted", {
		unsigned e, p;
		if (seteuid(1000))
			_exit(1);
		caps(&e, &p);
		if (e != 0 || p == 0)
			_exit(2);
		uid_t r, ef, s;
		getresuid(&r, &ef, &s);
		if (r != 0 || ef != 1000 || s != 0)
			_exit(3);
		if (seteuid(0))
			_exit(4);
		caps(&e, &p);
		if (e != p)
			_exit(5);
		_exit(0);
	});
	IN_CHILD("setreuid_saved", {
		if (setreuid(-1, 1000))
			_exit(1);
		uid_t r, ef, s;
		getresuid(&r, &ef, &s);
		/* The effective id moved away from the real one: saved follows. */
		if (r != 0 || ef != 1000 || s != 1000)
			_exit(2);
		/* Unprivileged now: a real id that is neither real nor effective. */
		if (setreuid(2000, -1) == 0 || errno != EPERM)
			_exit(3);
		_exit(0);
	});
	IN_CHILD("setresuid_unprivileged", {
		if (setresuid(1000, 2000, 0))
			_exit(1);
		/* Unprivileged (no effective capabilities): only the current
		 * three ids may be set. */
		if (setresuid(3000, -1, -1) == 0 || errno != EPERM)
			_exit(2);
		if (setresuid(2000, 0, 1000))
			_exit(3);
		_exit(0);
	});
	IN_CHILD("keepcaps", {
		unsigned e, p;
		if (prctl(PR_SET_KEEPCAPS, 1) || prctl(PR_GET_KEEPCAPS) != 1)
			_exit(1);
		if (setresuid(1000, 1000, 1000))
			_exit(2);
		caps(&e, &p);
		if (e != 0 || p == 0)
			_exit(3);
		_exit(0);
	});
	IN_CHILD("setfsuid", {
		if (setfsuid(1000) != 0)
			_exit(1);
		if (setfsuid(-1) != 1000)
			_exit(2);
		unsigned e, p;
		caps(&e, &p);
		/* CAP_CHOWN (0) and CAP_DAC_OVERRIDE (1) left the effective set;
		 * CAP_SETUID (7) did not. */
		if ((e & 3) != 0 || !(e & (1 << 7)))
			_exit(3);
		_exit(0);
	});
	IN_CHILD("setgid_family", {
		if (setresgid(10, 20, 30))
			_exit(1);
		gid_t r, e, s;
		getresgid(&r, &e, &s);
		if (r != 10 || e != 20 || s != 30)
			_exit(2);
		gid_t g[3] = {7, 8, 9};
		if (setgroups(3, g) || getgroups(0, NULL) != 3)
			_exit(3);
		if (setuid(1000))
			_exit(4);
		if (setgid(5) == 0 || errno != EPERM)
			_exit(5);
		if (setgid(30) != 0)
			_exit(6);
		_exit(0);
	});
	IN_CHILD("capset_rules", {
		struct cap_header h = {CAP_V3, 0};
		struct cap_data d[2];
		memset(d, 0, sizeof d);
		d[0].effective = d[0].permitted = (1 << 7) | (1 << 6);
		if (RAW2(SYS_capset, &h, d))
			_exit(1);
		/* Permitted cannot grow back. */
		d[0].permitted |= 1 << 1;
		if (RAW2(SYS_capset, &h, d) != -EPERM)
			_exit(2);
		/* Effective must stay within permitted. */
		d[0].permitted = 1 << 7;
		d[0].effective = 1 << 6;
		if (RAW2(SYS_capset, &h, d) != -EPERM)
			_exit(3);
		unsigned e, p;
		caps(&e, &p);
		if (e != ((1 << 7) | (1 << 6)))
			_exit(4);
		_exit(0);
	});
	{
		struct cap_header h = {0x1234, 0};
		struct cap_data d[2];
		EXPECT("capget_bad_version", RAW2(SYS_capget, &h, d), -EINVAL);
		EXPECT("capget_version_written", h.version, CAP_V3);
		h.version = 0x1234;
		EXPECT("capget_probe_null", RAW2(SYS_capget, &h, NULL), 0);
		h.version = CAP_V1;
		h.pid = -1;
		EXPECT("capget_negative_pid", RAW2(SYS_capget, &h, d), -EINVAL);
		h.pid = 999999;
		EXPECT("capget_no_pid", RAW2(SYS_capget, &h, d), -ESRCH);
	}
	IN_CHILD("dumpable_follows_euid", {
		if (prctl(PR_GET_DUMPABLE) != 1)
			_exit(1);
		if (seteuid(1000))
			_exit(2);
		if (prctl(PR_GET_DUMPABLE) != 0)
			_exit(3);
		_exit(0);
	});
}

static void priorities(void) {
	IN_CHILD("nice", {
		errno = 0;
		if (getpriority(PRIO_PROCESS, 0) != 0 || errno)
			_exit(1);
		if (setpriority(PRIO_PROCESS, 0, 5))
			_exit(2);
		if (getpriority(PRIO_PROCESS, 0) != 5)
			_exit(3);
		if (setpriority(PRIO_PROCESS, 0, 100) || getpriority(PRIO_PROCESS, 0) != 19)
			_exit(4);
		if (setpriority(PRIO_PROCESS, 999999, 1) == 0 || errno != ESRCH)
			_exit(5);
		if (setpriority(7, 0, 1) == 0 || errno != EINVAL)
			_exit(6);
		if (setpriority(PRIO_PROCESS, 0, 5))
			_exit(10);
		/* Without CAP_SYS_NICE, going lower needs RLIMIT_NICE. */
		struct rlimit rl = {0, 0};
		setrlimit(RLIMIT_NICE, &rl);
		if (setresuid(1000, 1000, 1000))
			_exit(7);
		if (setpriority(PRIO_PROCESS, 0, 10))
			_exit(8);
		if (setpriority(PRIO_PROCESS, 0, 2) == 0 || errno != EACCES)
			_exit(9);
		_exit(0);
	});
}

int main(void) {
	groups_and_sessions();
	credentials();
	priorities();
	return 0;
}
