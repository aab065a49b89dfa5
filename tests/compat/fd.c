/* Descriptor table operations on the standard descriptors. */
#include "compat.h"
#include <fcntl.h>
#include <sys/uio.h>

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
	r = RAW4(SYS_pwrite64, 1, "x", 1, 0);
	CHECK("pwrite_pipe_espipe", r == -ESPIPE, "got %ld", r);
	r = RAW4(SYS_pread64, 0, &c, 1, -1);
	CHECK("pread_negative_offset_einval", r == -EINVAL, "got %ld", r);
	/* Non-blocking standard input (/dev/null here): no wait, EOF. */
	r = RAW3(SYS_fcntl, 0, F_SETFL, O_NONBLOCK);
	r |= RAW3(SYS_read, 0, &c, 1);
	CHECK("nonblocking_stdin_eof", r == 0, "got %ld", r);
	struct iovec big[3] = {{&c, 0x7fffffffffffffffL}, {&c, 0x7fffffffffffffffL}, {&c, 0x7fffffffffffffffL}};
	r = RAW3(SYS_readv, 0, big, 3);
	CHECK("readv_range_past_user_space_efault", r == -EFAULT, "got %ld", r);
	static char low[16];
	struct iovec clip[2] = {{low, 1}, {low, 0x7ffff000L}};
	r = RAW3(SYS_readv, 0, clip, 2);
	CHECK("readv_total_clipped", r == 0, "got %ld", r);
	r = RAW3(SYS_readv, 99, big, -1);
	CHECK("readv_bad_fd_first", r == -EBADF, "got %ld", r);
	return 0;
}
