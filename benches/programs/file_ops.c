/* argv[1] = "open" (open + close) or "stat"; argv[2] = a path; argv[3] =
 * iterations. Prints the mean time per operation in ns (raw system calls,
 * so glibc's choices do not enter). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 4)
		return 2;
	int do_open = strcmp(argv[1], "open") == 0;
	const char *path = argv[2];
	long n = atol(argv[3]);
	struct stat st;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (do_open) {
			long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || syscall(SYS_close, fd) != 0)
				return 1;
		} else if (syscall(SYS_newfstatat, AT_FDCWD, path, &st, 0) != 0) {
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.1f\n", ns / n);
	return 0;
}
