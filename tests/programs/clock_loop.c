/* Reads the clocks many times between two markers: with a vDSO, none of
 * these calls is a system call. Sleeps first so that the sandbox's clock
 * is calibrated (its first calibration takes a millisecond). */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(void) {
	struct timespec d = {0, 20000000}, t;
	struct timeval tv;
	nanosleep(&d, NULL);
	write(1, "begin\n", 6);
	long long sum = 0;
	for (int i = 0; i < 100000; i++) {
		clock_gettime(i % 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME, &t);
		sum += t.tv_nsec & 1;
	}
	for (int i = 0; i < 1000; i++) {
		gettimeofday(&tv, NULL);
		sum += time(NULL) & 1;
		clock_gettime(CLOCK_BOOTTIME, &t);
	}
	write(1, "end\n", 4);
	printf("%d\n", sum >= 0);
	return 0;
}
