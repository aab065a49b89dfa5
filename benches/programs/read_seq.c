/* Reads argv[1] sequentially in argv[2]-byte chunks (default 64 KiB) to
 * the end, argv[3] times (default 1); prints the best pass in MiB/s. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	long chunk = argc > 2 ? atol(argv[2]) : 65536;
	int passes = argc > 3 ? atoi(argv[3]) : 1;
	char *buf = malloc(chunk);
	double best = 0;
	for (int p = 0; p < passes; p++) {
		long fd = syscall(SYS_openat, AT_FDCWD, argv[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 1;
		struct timespec a, b;
		long total = 0, n;
		clock_gettime(CLOCK_MONOTONIC, &a);
		while ((n = syscall(SYS_read, fd, buf, chunk)) > 0)
			total += n;
		clock_gettime(CLOCK_MONOTONIC, &b);
		syscall(SYS_close, fd);
		double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
		double mibs = total / s / (1 << 20);
		if (mibs > best)
			best = mibs;
	}
	printf("%.1f\n", best);
	return 0;
}
