/* Resource limits: values come from the caller (the runner), changes are
 * the process's own. */
#include "compat.h"
#include <sys/resource.h>

int main(void) {
	struct rlimit l;
	long r = RAW2(SYS_getrlimit, RLIMIT_NOFILE, &l);
	printf("nofile %lu %lu\n", (unsigned long)l.rlim_cur, (unsigned long)l.rlim_max);
	CHECK("getrlimit_nofile", r == 0, "got %ld", r);
	r = RAW2(SYS_getrlimit, RLIMIT_STACK, &l);
	printf("stack %lu %lu\n", (unsigned long)l.rlim_cur, (unsigned long)l.rlim_max);
	struct rlimit old, set = {64, l.rlim_max};
	RAW2(SYS_getrlimit, RLIMIT_NOFILE, &old);
	set.rlim_max = old.rlim_max;
	r = RAW4(SYS_prlimit64, 0, RLIMIT_NOFILE, &set, &l);
	CHECK("prlimit_set_and_get_old", r == 0 && l.rlim_cur == old.rlim_cur, "got %ld", r);
	r = RAW2(SYS_getrlimit, RLIMIT_NOFILE, &l);
	CHECK("prlimit_took_effect", r == 0 && l.rlim_cur == 64, "cur %lu", (unsigned long)l.rlim_cur);
	struct rlimit inverted = {10, 5};
	r = RAW2(SYS_setrlimit, RLIMIT_NOFILE, &inverted);
	CHECK("setrlimit_cur_above_max_einval", r == -EINVAL, "got %ld", r);
	r = RAW2(SYS_getrlimit, 99, &l);
	CHECK("getrlimit_bad_resource_einval", r == -EINVAL, "got %ld", r);
	r = RAW4(SYS_prlimit64, 0, RLIMIT_CORE, NULL, NULL);
	CHECK("prlimit_nothing", r == 0, "got %ld", r);
	/* With 64 descriptors allowed, dup beyond fails with EMFILE. */
	r = RAW3(SYS_fcntl, 1, 0 /* F_DUPFD */, 64);
	CHECK("dupfd_at_limit_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_fcntl, 1, 0 /* F_DUPFD */, 63);
	CHECK("dupfd_below_limit", r == 63, "got %ld", r);
	r = RAW3(SYS_fcntl, 1, 0 /* F_DUPFD */, 63);
	CHECK("dupfd_full_emfile", r == -EMFILE, "got %ld", r);
	return 0;
}
