/*
 * rvisor's vDSO: the clock calls an application makes most often, answered
 * in the application's own address space without a trap.
 *
 * The sentry maps this image (linked at 0, no relocations) right above one
 * page of clock parameters it keeps up to date (the "vvar" page, see
 * sentry/src/kernel/vdso.rs, whose `VvarPage` this struct mirrors). Times
 * come from the TSC: ns = mono_base + ((tsc - tsc_base) * mult) >> 32.
 * Anything this file does not answer (another clock, parameters not ready,
 * the sentry writing them for too long) is the real system call, which
 * traps into the sentry like any other.
 *
 * Built by sentry/build.rs with -nostdlib: no libc, no globals but the
 * vvar page, no stack protector.
 */

typedef unsigned long u64;
typedef long s64;
typedef unsigned int u32;

struct vvar {
	u32 seq;		/* odd while the sentry writes */
	u32 ready;		/* 0: every call takes the system call */
	u64 tsc_base;
	u64 mono_base;		/* CLOCK_MONOTONIC ns at tsc_base */
	u64 mult;		/* ns per tick, 32.32 fixed point */
	s64 real_off;		/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
	s64 boot_off;		/* CLOCK_BOOTTIME - CLOCK_MONOTONIC, ns */
	s64 tai_off;		/* CLOCK_TAI - CLOCK_REALTIME, ns */
	u64 coarse_ns;		/* resolution of the coarse clocks */
};

_Static_assert(__builtin_offsetof(struct vvar, tsc_base) == 8, "layout");
_Static_assert(__builtin_offsetof(struct vvar, coarse_ns) == 56, "layout");

/* Defined by the linker script: the page below the image. */
extern const volatile struct vvar vvar_page __attribute__((visibility("hidden")));

struct timespec { s64 tv_sec; s64 tv_nsec; };
struct timeval { s64 tv_sec; s64 tv_usec; };
struct timezone { int tz_minuteswest; int tz_dsttime; };

#define NSEC 1000000000L

enum {
	CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_REALTIME_COARSE = 5,
	CLOCK_MONOTONIC_COARSE = 6, CLOCK_BOOTTIME = 7, CLOCK_TAI = 11,
};

enum { SYS_gettimeofday = 96, SYS_time = 201, SYS_clock_gettime = 228,
       SYS_clock_getres = 229, SYS_getcpu = 309 };

static inline long sys2(long nr, long a, long b)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return r;
}


static inline u64 rdtsc_ordered(void)
{
	u32 lo, hi;
	/* lfence: the TSC is read after the loads before it (Linux's rdtsc_ordered). */
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((u64)hi << 32) | lo;
}

/*
 * Clock `clk` in ns into *ns, or -1 when the parameters cannot answer.
 * The coarse clocks are the precise ones cut to their resolution.
 */
static inline int read_clock(int clk, u64 *ns)
{
	const volatile struct vvar *v = &vvar_page;
	int tries;

	for (tries = 0; tries < 64; tries++) {
		u32 seq = v->seq;
		__asm__ volatile("" ::: "memory");
		if (seq & 1)
			continue;
		if (!v->ready)
			return -1;
		u64 base = v->tsc_base, mono = v->mono_base, mult = v->mult;
		s64 real = v->real_off, boot = v->boot_off, tai = v->tai_off;
		u64 coarse = v->coarse_ns ? v->coarse_ns : 1;
		u64 tsc = rdtsc_ordered();
		__asm__ volatile("" ::: "memory");
		if (v->seq != seq)
			continue;
		u64 delta = tsc > base ? tsc - base : 0;
		u64 t = mono + (u64)(((unsigned __int128)delta * mult) >> 32);
		switch (clk) {
		case CLOCK_MONOTONIC: break;
		case CLOCK_MONOTONIC_COARSE: t -= t % coarse; break;
		case CLOCK_REALTIME: t += real; break;
		case CLOCK_REALTIME_COARSE: t -= t % coarse; t += real; break;
		case CLOCK_BOOTTIME: t += boot; break;
		case CLOCK_TAI: t += real + tai; break;
		default: return -1;
		}
		*ns = t;
		return 0;
	}
	return -1;
}

static inline int served(int clk)
{
	return clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC || clk == CLOCK_REALTIME_COARSE ||
	       clk == CLOCK_MONOTONIC_COARSE || clk == CLOCK_BOOTTIME || clk == CLOCK_TAI;
}

int __vdso_clock_gettime(int clk, struct timespec *ts)
{
	u64 ns;
	if (!served(clk) || read_clock(clk, &ns))
		return (int)sys2(SYS_clock_gettime, clk, (long)ts);
	ts->tv_sec = (s64)(ns / NSEC);
	ts->tv_nsec = (s64)(ns % NSEC);
	return 0;
}

int __vdso_gettimeofday(struct timeval *tv, struct timezone *tz)
{
	u64 ns;
	if (tv) {
		if (read_clock(CLOCK_REALTIME, &ns))
			return (int)sys2(SYS_gettimeofday, (long)tv, (long)tz);
		tv->tv_sec = (s64)(ns / NSEC);
		tv->tv_usec = (s64)(ns % NSEC) / 1000;
	}
	if (tz) {
		/* The sandbox's time zone, as the system call reports it. */
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

long __vdso_time(long *t)
{
	u64 ns;
	if (read_clock(CLOCK_REALTIME, &ns))
		return sys2(SYS_time, (long)t, 0);
	long s = (long)(ns / NSEC);
	if (t)
		*t = s;
	return s;
}

int __vdso_clock_getres(int clk, struct timespec *res)
{
	const volatile struct vvar *v = &vvar_page;
	if (!served(clk) || !v->ready)
		return (int)sys2(SYS_clock_getres, clk, (long)res);
	if (res) {
		int coarse = clk == CLOCK_REALTIME_COARSE || clk == CLOCK_MONOTONIC_COARSE;
		res->tv_sec = 0;
		res->tv_nsec = coarse ? (s64)v->coarse_ns : 1;
	}
	return 0;
}

int __vdso_getcpu(u32 *cpu, u32 *node, void *cache)
{
	/*
	 * The host kernel keeps (node << 12 | cpu) as the limit of a GDT
	 * segment (Linux's vdso_read_cpunode): LSL reads it without a call,
	 * as the system call's answer would (the CPU this thread runs on).
	 */
	u32 p;
	(void)cache;
	__asm__ volatile("lsl %1, %0" : "=r"(p) : "r"(15u * 8u + 3u));
	if (cpu)
		*cpu = p & 0xfff;
	/* The sandbox has one node, as the system call says. */
	if (node)
		*node = 0;
	return 0;
}

int clock_gettime(int, struct timespec *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct timeval *, struct timezone *) __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct timespec *) __attribute__((weak, alias("__vdso_clock_getres")));
int getcpu(u32 *, u32 *, void *) __attribute__((weak, alias("__vdso_getcpu")));
