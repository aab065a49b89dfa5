/* `clock gettime N`: mean ns per clock_gettime(CLOCK_MONOTONIC) through
 * the libc (the vDSO where there is one) over N calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
	if (argc < 3 || strcmp(argv[1], "gettime") != 0)
		return 2;
	long n = atol(argv[2]);
	struct timespec a, b, t;
	/* The sandbox's clock calibrates in its first millisecond. */
	struct timespec d = {0, 20000000};
	nanosleep(&d, NULL);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		clock_gettime(CLOCK_MONOTONIC, &t);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
