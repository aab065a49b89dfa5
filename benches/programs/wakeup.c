/* Floors of a systrap-style platform, to choose its wake-up scheme by
 * measurement (benches/benches/trap.rs runs it). An application thread's
 * getpid is trapped by a seccomp filter (SECCOMP_RET_TRAP) and answered:
 *
 *   mode 0: by its own SIGSYS handler (the in-process floor: trap, signal
 *           delivery, rt_sigreturn);
 *   mode 1: by another process (the "sentry"), the handler handing the
 *           call over through a shared word with futex wake and wait, both
 *           ways;
 *   mode 2: the same, both sides spinning on the word instead.
 *
 * Usage: wakeup MODE N APP_CPU SENTRY_CPU; prints mean µs per call. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

enum { IDLE, TRAPPED, ANSWERED };
static _Atomic unsigned *word;
static int mode;

static long fut(void *a, int op, unsigned v) {
	return syscall(SYS_futex, a, op, v, 0, 0, 0);
}

static void handler(int sig, siginfo_t *si, void *uc_) {
	(void)sig;
	(void)si;
	ucontext_t *uc = uc_;
	if (mode == 1 || mode == 2) {
		atomic_store(word, TRAPPED);
		if (mode == 1) {
			fut((void *)word, FUTEX_WAKE, 1);
			while (atomic_load(word) != ANSWERED)
				fut((void *)word, FUTEX_WAIT, TRAPPED);
		} else {
			while (atomic_load(word) != ANSWERED)
				__builtin_ia32_pause();
		}
		atomic_store(word, IDLE);
	}
	uc->uc_mcontext.gregs[REG_RAX] = 42;
}

static void pin(int cpu) {
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof s, &s);
}

int main(int argc, char **argv) {
	if (argc < 5)
		return 2;
	mode = atoi(argv[1]);
	long n = atol(argv[2]);
	int app_cpu = atoi(argv[3]), sentry_cpu = atoi(argv[4]);
	word = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t child = 0;
	if (mode) {
		child = fork();
		if (child == 0) {
			pin(sentry_cpu);
			for (;;) {
				while (atomic_load(word) != TRAPPED) {
					if (mode == 1)
						fut((void *)word, FUTEX_WAIT, IDLE);
					else
						__builtin_ia32_pause();
				}
				atomic_store(word, ANSWERED);
				if (mode == 1)
					fut((void *)word, FUTEX_WAKE, 1);
				while (atomic_load(word) == ANSWERED)
					if (mode == 2)
						__builtin_ia32_pause();
					else
						sched_yield();
			}
		}
	}
	pin(app_cpu);
	struct sigaction sa = {0};
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSYS, &sa, 0);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = {4, f};
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p))
		return 3;
	for (int i = 0; i < 100; i++)
		if (syscall(SYS_getpid) != 42)
			return 4;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getpid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1000);
	if (child)
		kill(child, SIGKILL);
	return 0;
}
