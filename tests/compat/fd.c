/* Descriptor table operations on the standard descriptors. */
#include "compat.h"
#include <fcntl.h>

int main(void) {
	long d = RAW1(SYS_dup, 1);
	CHECK("dup_lowest_free", d == 3, "got %ld", d);
	long w = RAW3(SYS_write, d, "via dup\n", 8);
	CHECK("dup_shares_file", w == 8, "got %ld", w);
	long r = RAW2(SYS_fcntl, d, F_GETFD);
	CHECK("dup_clears_cloexec", r == 0, "got %ld", r);
	r = RAW3(SYS_fcntl, d, F_SETFD, FD_CLOEXEC);
	r |= RAW2(SYS_fcntl, d, F_GETFD) != FD_CLOEXEC;
	CHECK("fcntl_setfd", r == 0, "got %ld", r);
	r = RAW2(SYS_dup2, 1, 10);
	CHECK("dup2", r == 10, "got %ld", r);
	r = RAW2(SYS_dup2, 10, 10);
	CHECK("dup2_same", r == 10, "got %ld", r);
	r = RAW2(SYS_dup2, 77, 10);
	CHECK("dup2_bad_old_ebadf", r == -EBADF, "got %ld", r);
	r = RAW3(SYS_dup3, 10, 10, 0);
	CHECK("dup3_same_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_dup3, 1, 11, O_CLOEXEC);
	CHECK("dup3_cloexec", r == 11 && RAW2(SYS_fcntl, 11, F_GETFD) == FD_CLOEXEC, "got %ld", r);
	r = RAW3(SYS_dup3, 1, 12, 1);
	CHECK("dup3_bad_flags_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_fcntl, 1, F_DUPFD_CLOEXEC, 20);
	CHECK("fcntl_dupfd_cloexec", r == 20 && RAW2(SYS_fcntl, 20, F_GETFD) == FD_CLOEXEC, "got %ld", r);
	r = RAW1(SYS_close, 20);
	CHECK("close", r == 0, "got %ld", r);
	r = RAW1(SYS_close, 20);
	CHECK("close_twice_ebadf", r == -EBADF, "got %ld", r);
	r = RAW3(SYS_write, 20, "x", 1);
	CHECK("closed_fd_ebadf", r == -EBADF, "got %ld", r);
	r = RAW2(SYS_fcntl, 1, F_GETFL);
	CHECK("getfl_stdout_writable", r >= 0 && (r & O_ACCMODE) != O_RDONLY, "got %ld", r);
	r = RAW2(SYS_fcntl, 1, 9999);
	CHECK("fcntl_unknown_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_lseek, 1, 0, SEEK_CUR);
	CHECK("lseek_pipe_espipe", r == -ESPIPE, "got %ld", r);
	char c;
	r = RAW3(SYS_read, 1, &c, 1);
	CHECK("read_write_only_pipe_ebadf", r == -EBADF, "got %ld", r);
	r = RAW3(SYS_ioctl, 1, 0x5401 /* TCGETS */, &c);
	CHECK("tcgets_on_pipe_enotty", r == -ENOTTY, "got %ld", r);
	return 0;
}
