/* The compatibility suite's one-line-per-case protocol.
 *
 * Every case prints exactly one line: "ok NAME", "fail NAME: reason" or
 * "skip NAME: reason". A program may print other lines too (a transcript
 * the runner compares). The runner runs each program natively and under
 * `rvisor do` and fails on any difference in output or exit status.
 * stdout is unbuffered so that a case that ends the process (a fault)
 * still shows what ran before it. */
#ifndef RVISOR_COMPAT_H
#define RVISOR_COMPAT_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

__attribute__((constructor)) static void compat_unbuffered(void) {
	setvbuf(stdout, NULL, _IONBF, 0);
}

#define OK(name) printf("ok %s\n", name)
#define SKIP(name, ...)                                                        \
	do {                                                                   \
		printf("skip %s: ", name);                                     \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
	} while (0)
#define FAIL(name, ...)                                                        \
	do {                                                                   \
		printf("fail %s: ", name);                                     \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
	} while (0)
#define CHECK(name, cond, ...)                                                 \
	do {                                                                   \
		if (cond)                                                      \
			OK(name);                                              \
		else                                                           \
			FAIL(name, __VA_ARGS__);                               \
	} while (0)

/* A result against the expected value (a count, or -errno for a raw
 * call). */
#define EXPECT(name, got, want)                                                \
	do {                                                                   \
		long _g = (long)(got), _w = (long)(want);                      \
		CHECK(name, _g == _w, "got %ld, want %ld", _g, _w);            \
	} while (0)

/* A raw system call's result: -errno on failure (libc wrappers differ
 * between glibc and musl; the kernel interface does not). */
static inline long raw(long nr, long a, long b, long c, long d, long e, long f) {
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}
#define RAW0(n) raw(n, 0, 0, 0, 0, 0, 0)
#define RAW1(n, a) raw(n, (long)(a), 0, 0, 0, 0, 0)
#define RAW2(n, a, b) raw(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define RAW3(n, a, b, c) raw(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define RAW4(n, a, b, c, d) raw(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define RAW5(n, a, b, c, d, e) raw(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define RAW6(n, a, b, c, d, e, f)                                              \
	raw(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* Opens and closes `path` (mode 0644 if it creates): 0 or -errno. */
static inline long open_close(const char *path, long flags) {
	long fd = raw(SYS_open, (long)path, flags, 0644, 0, 0, 0);
	if (fd >= 0)
		raw(SYS_close, fd, 0, 0, 0, 0, 0);
	return fd >= 0 ? 0 : fd;
}

/* An address no process can map (non-canonical on x86_64). */
#define BAD_PTR ((void *)0xffff800000001000UL)
/* A user address nothing is mapped at (checked by the tests that use it). */
#define UNMAPPED ((void *)0x10000UL)

#endif
