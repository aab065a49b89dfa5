/* Bad pointers are EFAULT, never a crash of the kernel. */
#include "compat.h"
#include <sys/mman.h>
#include <time.h>

struct ptr_case {
	const char *name;
	long nr;
	long a, b, c, d;
};

int main(void) {
	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ptr_case cases[] = {
		{"uname_null", SYS_uname, 0, 0, 0, 0},
		{"uname_kernel", SYS_uname, (long)BAD_PTR, 0, 0, 0},
		{"uname_read_only", SYS_uname, (long)ro, 0, 0, 0},
		{"uname_prot_none", SYS_uname, (long)none, 0, 0, 0},
		{"clock_gettime_null", SYS_clock_gettime, CLOCK_MONOTONIC, 0, 0, 0},
		{"clock_gettime_unmapped", SYS_clock_gettime, CLOCK_MONOTONIC, (long)UNMAPPED, 0, 0},
		{"gettimeofday_read_only", SYS_gettimeofday, (long)ro, 0, 0, 0},
		{"getrandom_kernel", SYS_getrandom, (long)BAD_PTR, 8, 0, 0},
		{"getrandom_read_only", SYS_getrandom, (long)ro, 8, 0, 0},
		{"fstat_null", SYS_fstat, 1, 0, 0, 0},
		{"rt_sigaction_bad_act", SYS_rt_sigaction, 10, (long)BAD_PTR, 0, 8},
		{"rt_sigaction_bad_oldact", SYS_rt_sigaction, 10, 0, (long)ro, 8},
		{"rt_sigprocmask_bad_set", SYS_rt_sigprocmask, 0, (long)UNMAPPED, 0, 8},
		{"sigaltstack_bad", SYS_sigaltstack, (long)none, 0, 0, 0},
		{"prlimit_bad_old", SYS_prlimit64, 0, 7, 0, (long)ro},
		{"nanosleep_bad_req", SYS_nanosleep, (long)UNMAPPED, 0, 0, 0},
		{"getrlimit_null", SYS_getrlimit, 7, 0, 0, 0},
		{"setrlimit_null", SYS_setrlimit, 7, 0, 0, 0},
		{"arch_prctl_get_fs_bad", SYS_arch_prctl, 0x1003, (long)ro, 0, 0},
		{"set_robust_list_not_checked", SYS_set_robust_list, (long)BAD_PTR, 24, 0, 0},
		{"writev_iovec_in_prot_none", SYS_writev, 1, (long)none, 1, 0},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ptr_case *c = &cases[i];
		long r = raw(c->nr, c->a, c->b, c->c, c->d, 0, 0);
		/* set_robust_list does not look at the list: it succeeds. */
		long want = strcmp(c->name, "set_robust_list_not_checked") ? -EFAULT : 0;
		CHECK(c->name, r == want, "got %ld", r);
	}
	/* A string that runs into an unmapped page. */
	char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(two + 4096, 4096);
	memset(two, 'x', 4096);
	long r = RAW2(SYS_prctl, 15 /* PR_SET_NAME */, two + 4096 - 8);
	CHECK("prctl_set_name_reads_at_most_16", r == 0 || r == -EFAULT, "got %ld", r);
	return 0;
}
