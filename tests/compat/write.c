/* write and writev to standard output. */
#include "compat.h"
#include <sys/mman.h>
#include <sys/uio.h>

int main(void) {
	printf("transcript begins\n");
	long r = RAW3(SYS_write, 1, "plain write\n", 12);
	CHECK("write_returns_count", r == 12, "got %ld", r);
	r = RAW3(SYS_write, 1, "x", 0);
	CHECK("write_zero_bytes", r == 0, "got %ld", r);
	r = RAW3(SYS_write, 1, BAD_PTR, 4);
	CHECK("write_bad_pointer_efault", r == -EFAULT, "got %ld", r);
	r = RAW3(SYS_write, 1, UNMAPPED, 4);
	CHECK("write_unmapped_efault", r == -EFAULT, "got %ld", r);
	r = RAW3(SYS_write, 99, "x", 1);
	CHECK("write_bad_fd_ebadf", r == -EBADF, "got %ld", r);
	r = RAW3(SYS_write, -1, "x", 1);
	CHECK("write_negative_fd_ebadf", r == -EBADF, "got %ld", r);
	r = RAW3(SYS_write, 0x100000001L, "fd 1 in the low half\n", 21);
	CHECK("write_fd_is_an_int", r == 21, "got %ld", r);

	struct iovec v[3] = {
		{"vectored ", 9},
		{"write", 5},
		{"\n", 1},
	};
	r = RAW3(SYS_writev, 1, v, 3);
	CHECK("writev_returns_total", r == 15, "got %ld", r);
	r = RAW3(SYS_writev, 1, v, 0);
	CHECK("writev_zero_vectors", r == 0, "got %ld", r);
	r = RAW3(SYS_writev, 1, v, -1);
	CHECK("writev_negative_count_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_writev, 1, v, 1025);
	CHECK("writev_too_many_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_writev, 1, BAD_PTR, 1);
	CHECK("writev_bad_iovec_efault", r == -EFAULT, "got %ld", r);
	struct iovec negative[2] = {{"a", 1}, {"b", (size_t)-1}};
	r = RAW3(SYS_writev, 1, negative, 2);
	CHECK("writev_negative_length_einval", r == -EINVAL, "got %ld", r);
	struct iovec empty_first[2] = {{NULL, 0}, {"empty first\n", 12}};
	r = RAW3(SYS_writev, 1, empty_first, 2);
	CHECK("writev_empty_vector_skipped", r == 12, "got %ld", r);

	/* A large write arrives whole. */
	size_t big = 3 << 20;
	char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		FAIL("large_write", "mmap failed");
		return 1;
	}
	memset(p, 'z', big);
	int fds[2];
	(void)fds;
	r = RAW3(SYS_write, 2, p, 0);
	CHECK("write_stderr_zero", r == 0, "got %ld", r);
	printf("transcript ends\n");
	return 0;
}
