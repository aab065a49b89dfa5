/* Odds and ends of process state. */
#include "compat.h"
#include <sched.h>
#include <sys/prctl.h>
#include <sys/utsname.h>

int main(void) {
	unsigned char buf[64] = {0};
	long r = RAW3(SYS_getrandom, buf, sizeof(buf), 0);
	int nz = 0;
	for (unsigned i = 0; i < sizeof(buf); i++)
		nz |= buf[i];
	CHECK("getrandom_fills", r == 64 && nz, "got %ld", r);
	r = RAW3(SYS_getrandom, buf, 8, 0x100);
	CHECK("getrandom_bad_flags_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_getrandom, buf, 0, 1);
	CHECK("getrandom_zero", r == 0, "got %ld", r);

	long old = RAW1(SYS_umask, 027);
	long now = RAW1(SYS_umask, old);
	CHECK("umask_round_trip", now == 027, "got %lo", now);
	r = RAW1(SYS_umask, 0777777);
	long masked = RAW1(SYS_umask, old);
	CHECK("umask_masks_to_0777", masked == 0777, "got %lo", masked);

	char name[16] = {0};
	r = RAW2(SYS_prctl, PR_SET_NAME, "compat-test-name-too-long");
	r |= RAW2(SYS_prctl, PR_GET_NAME, name);
	CHECK("prctl_name", r == 0 && !strcmp(name, "compat-test-nam"), "got %s", name);
	r = RAW2(SYS_prctl, 0x7fffffff, 0);
	CHECK("prctl_unknown_einval", r == -EINVAL, "got %ld", r);
	r = RAW2(SYS_prctl, PR_GET_DUMPABLE, 0);
	CHECK("prctl_dumpable", r == 1, "got %ld", r);

	unsigned long fs = 0;
	r = RAW2(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs);
	unsigned long self;
	__asm__("mov %%fs:0, %0" : "=r"(self));
	CHECK("arch_prctl_get_fs", r == 0 && fs == self, "fs %#lx self %#lx", fs, self);
	r = RAW2(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, 0xffff800000000000UL);
	CHECK("arch_prctl_set_fs_kernel_eperm", r == -EPERM, "got %ld", r);
	r = RAW2(SYS_arch_prctl, 0x9999, 0);
	CHECK("arch_prctl_unknown_einval", r == -EINVAL, "got %ld", r);

	cpu_set_t set;
	CPU_ZERO(&set);
	r = RAW3(SYS_sched_getaffinity, 0, sizeof(set), &set);
	printf("cpus %d\n", CPU_COUNT(&set));
	CHECK("sched_getaffinity", r > 0 && CPU_COUNT(&set) > 0, "got %ld", r);
	r = RAW3(SYS_sched_getaffinity, 0, 3, &set);
	CHECK("sched_getaffinity_short_einval", r == -EINVAL, "got %ld", r);
	r = RAW0(SYS_sched_yield);
	CHECK("sched_yield", r == 0, "got %ld", r);
	unsigned cpu = 999;
	r = RAW3(SYS_getcpu, &cpu, NULL, NULL);
	CHECK("getcpu", r == 0 && cpu < 1024, "got %ld cpu %u", r, cpu);

	r = RAW0(SYS_getuid);
	printf("uid %ld euid %ld gid %ld egid %ld\n", r, RAW0(SYS_geteuid), RAW0(SYS_getgid), RAW0(SYS_getegid));
	unsigned ru, eu, su;
	r = RAW3(SYS_getresuid, &ru, &eu, &su);
	CHECK("getresuid", r == 0 && ru == (unsigned)RAW0(SYS_getuid) && su == eu, "got %ld", r);
	r = RAW3(SYS_set_tid_address, &ru, 0, 0);
	CHECK("set_tid_address_returns_tid", r == RAW0(SYS_gettid), "got %ld", r);
	r = RAW2(SYS_set_robust_list, 0, 23);
	CHECK("set_robust_list_bad_len", r == -EINVAL, "got %ld", r);
	r = RAW1(SYS_getpgid, -1);
	CHECK("getpgid_negative_esrch", r == -ESRCH, "got %ld", r);
	r = RAW2(SYS_prctl, PR_GET_NO_NEW_PRIVS, 0);
	CHECK("no_new_privs_initially_clear", r == 0, "got %ld", r);
	r = RAW6(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
	r |= RAW2(SYS_prctl, PR_GET_NO_NEW_PRIVS, 0) != 1;
	CHECK("no_new_privs_sticks", r == 0, "got %ld", r);
	return 0;
}
