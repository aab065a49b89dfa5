/* The sandbox is its own kernel: the program is pid 1 with no parent, sees
 * the sandbox's hostname, and cannot signal a host process. A filtered
 * passthrough would fail every case. Natively the runner runs this in a
 * throwaway pid and UTS namespace with the same hostname, so the same
 * lines are expected. argv[1]: the pid of a live host process (the
 * runner's); argv[2]: the expected hostname. */
#include "compat.h"
#include <signal.h>
#include <sys/utsname.h>

int main(int argc, char **argv) {
	if (argc < 3) {
		FAIL("args", "need a host pid and a hostname");
		return 1;
	}
	long pid = RAW0(SYS_getpid);
	CHECK("getpid_is_1", pid == 1, "got %ld", pid);
	long tid = RAW0(SYS_gettid);
	CHECK("gettid_is_1", tid == 1, "got %ld", tid);
	long ppid = RAW0(SYS_getppid);
	CHECK("getppid_is_0", ppid == 0, "got %ld", ppid);
	struct utsname u;
	long r = RAW1(SYS_uname, &u);
	CHECK("uname_nodename", r == 0 && !strcmp(u.nodename, argv[2]), "got %s", u.nodename);
	CHECK("uname_sysname", r == 0 && !strcmp(u.sysname, "Linux"), "got %s", u.sysname);
	CHECK("uname_machine", r == 0 && !strcmp(u.machine, "x86_64"), "got %s", u.machine);
	long host = atol(argv[1]);
	r = RAW2(SYS_kill, host, 0);
	CHECK("kill_host_pid_esrch", r == -ESRCH, "kill(%ld, 0) = %ld", host, r);
	r = RAW2(SYS_kill, host, SIGKILL);
	CHECK("kill_host_pid_sigkill_esrch", r == -ESRCH, "kill(%ld, SIGKILL) = %ld", host, r);
	r = RAW3(SYS_tgkill, host, host, 0);
	CHECK("tgkill_host_pid_esrch", r == -ESRCH, "got %ld", r);
	r = RAW2(SYS_kill, 1, 0);
	CHECK("kill_self_pid_1", r == 0, "got %ld", r);
	/* Every process but init and the caller: there is none. */
	r = RAW2(SYS_kill, -1, 0);
	CHECK("kill_everyone_esrch", r == -ESRCH, "got %ld", r);
	r = RAW2(SYS_kill, (long)(-2147483647 - 1), 0);
	CHECK("kill_int_min_esrch", r == -ESRCH, "got %ld", r);
	/* The sandbox's names are its own to change (natively: the throwaway
	 * UTS namespace's). */
	char long_name[80];
	memset(long_name, 'h', sizeof long_name);
	EXPECT("sethostname_65_einval", RAW2(SYS_sethostname, long_name, 65), -EINVAL);
	EXPECT("sethostname_negative_einval", RAW2(SYS_sethostname, long_name, -1), -EINVAL);
	EXPECT("sethostname_efault", RAW2(SYS_sethostname, 8, 4), -EFAULT);
	EXPECT("sethostname_64_ok", RAW2(SYS_sethostname, long_name, 64), 0);
	RAW1(SYS_uname, &u);
	CHECK("uname_after_sethostname", strlen(u.nodename) == 64 && u.nodename[63] == 'h', "got %s", u.nodename);
	EXPECT("sethostname_back", RAW2(SYS_sethostname, argv[2], strlen(argv[2])), 0);
	EXPECT("setdomainname", RAW2(SYS_setdomainname, "rvisor.test", 11), 0);
	RAW1(SYS_uname, &u);
	CHECK("uname_domainname", !strcmp(u.domainname, "rvisor.test") && !strcmp(u.nodename, argv[2]), "got %s %s",
	      u.domainname, u.nodename);
	return 0;
}
