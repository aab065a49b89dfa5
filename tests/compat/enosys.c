/* Numbers that are not system calls fail with ENOSYS. */
#include "compat.h"

int main(void) {
	long r = RAW0(500);
	CHECK("enosys_500", r == -ENOSYS, "got %ld", r);
	r = RAW0(100000);
	CHECK("enosys_100000", r == -ENOSYS, "got %ld", r);
	r = RAW0(-1);
	CHECK("enosys_minus_one", r == -ENOSYS, "got %ld", r);
	r = RAW0(0x40000000 | 39);
	CHECK("x32_getpid_enosys", r == -ENOSYS, "got %ld", r);
	r = RAW0(SYS_getpid);
	CHECK("getpid_still_works", r > 0, "got %ld", r);
	return 0;
}
