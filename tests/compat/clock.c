/* Clocks and sleeps. */
#include "compat.h"
#include <sys/time.h>
#include <time.h>

static long long ns(struct timespec t) {
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(void) {
	struct timespec a, b;
	long r = RAW2(SYS_clock_gettime, CLOCK_MONOTONIC, &a);
	r |= RAW2(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
	CHECK("monotonic_does_not_go_back", r == 0 && ns(b) >= ns(a), "r %ld", r);
	const int clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID,
			      CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, 11};
	int good = 1;
	for (unsigned i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		struct timespec t;
		long x = RAW2(SYS_clock_gettime, clocks[i], &t);
		if (x != 0 || t.tv_nsec < 0 || t.tv_nsec >= 1000000000) {
			FAIL("clock_gettime_all", "clock %d: %ld", clocks[i], x);
			good = 0;
		}
	}
	if (good)
		OK("clock_gettime_all");
	r = RAW2(SYS_clock_gettime, 12345, &a);
	CHECK("clock_gettime_bad_clock_einval", r == -EINVAL, "got %ld", r);
	struct timespec res;
	r = RAW2(SYS_clock_getres, CLOCK_MONOTONIC, &res);
	CHECK("clock_getres_monotonic_1ns", r == 0 && res.tv_sec == 0 && res.tv_nsec == 1, "got %ld %ld", r,
	      res.tv_nsec);
	r = RAW2(SYS_clock_getres, CLOCK_REALTIME, NULL);
	CHECK("clock_getres_null_ok", r == 0, "got %ld", r);

	struct timeval tv;
	struct timespec rt;
	RAW2(SYS_clock_gettime, CLOCK_REALTIME, &rt);
	r = RAW2(SYS_gettimeofday, &tv, NULL);
	CHECK("gettimeofday_agrees", r == 0 && tv.tv_sec - rt.tv_sec <= 1 && tv.tv_sec >= rt.tv_sec, "got %ld", r);
	long t = RAW1(SYS_time, NULL);
	/* time() may read a coarse clock, a tick behind. */
	CHECK("time_agrees", t + 1 >= rt.tv_sec && t - rt.tv_sec <= 1, "got %ld vs %ld", t, (long)rt.tv_sec);
	long tl = 0;
	t = RAW1(SYS_time, &tl);
	CHECK("time_stores", t == tl, "%ld vs %ld", t, tl);

	struct timespec req = {0, 20 * 1000 * 1000};
	RAW2(SYS_clock_gettime, CLOCK_MONOTONIC, &a);
	r = RAW2(SYS_nanosleep, &req, NULL);
	RAW2(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
	CHECK("nanosleep_sleeps", r == 0 && ns(b) - ns(a) >= 20 * 1000 * 1000, "r %ld slept %lld", r, ns(b) - ns(a));
	struct timespec bad = {0, 1000000000};
	r = RAW2(SYS_nanosleep, &bad, NULL);
	CHECK("nanosleep_bad_nsec_einval", r == -EINVAL, "got %ld", r);
	struct timespec neg = {-1, 0};
	r = RAW2(SYS_nanosleep, &neg, NULL);
	CHECK("nanosleep_negative_einval", r == -EINVAL, "got %ld", r);
	struct timespec zero = {0, 0};
	r = RAW2(SYS_nanosleep, &zero, NULL);
	CHECK("nanosleep_zero", r == 0, "got %ld", r);

	RAW2(SYS_clock_gettime, CLOCK_MONOTONIC, &a);
	struct timespec until = a;
	until.tv_nsec += 10 * 1000 * 1000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	r = RAW4(SYS_clock_nanosleep, CLOCK_MONOTONIC, 1 /* TIMER_ABSTIME */, &until, NULL);
	RAW2(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
	CHECK("clock_nanosleep_abstime", r == 0 && ns(b) >= ns(until), "r %ld", r);
	r = RAW4(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &req, NULL);
	CHECK("clock_nanosleep_thread_cputime_eopnotsupp", r == -EOPNOTSUPP, "got %ld", r);
	return 0;
}
