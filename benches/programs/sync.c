/* argv[1] = "futex" (two threads hand a token back and forth through
 * FUTEX_WAIT/FUTEX_WAKE on two words; one round trip = two hand-overs) or
 * "signal" (raise(SIGUSR1) with a handler installed: the signal is sent,
 * delivered on a frame, the handler runs and returns through
 * rt_sigreturn); argv[2] = iterations. Prints the mean time per iteration
 * in ns. */
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int turn;
static long rounds;
static volatile sig_atomic_t hits;

static void wait_for(int want) {
	while (turn != want)
		syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, !want, NULL, NULL, 0);
}

static void pass_to(int who) {
	turn = who;
	syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *partner(void *arg) {
	(void)arg;
	for (long i = 0; i < rounds; i++) {
		wait_for(1);
		pass_to(0);
	}
	return NULL;
}

static void on_usr1(int sig) {
	(void)sig;
	hits++;
}

static double now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc < 3)
		return 2;
	rounds = atol(argv[2]);
	if (rounds <= 0)
		return 2;
	double t0;
	if (strcmp(argv[1], "futex") == 0) {
		pthread_t th;
		pthread_create(&th, NULL, partner, NULL);
		t0 = now_ns();
		for (long i = 0; i < rounds; i++) {
			pass_to(1);
			wait_for(0);
		}
		double t1 = now_ns();
		pthread_join(th, NULL);
		printf("%.1f\n", (t1 - t0) / rounds);
		return 0;
	}
	signal(SIGUSR1, on_usr1);
	t0 = now_ns();
	for (long i = 0; i < rounds; i++)
		raise(SIGUSR1);
	double t1 = now_ns();
	if (hits != rounds)
		return 1;
	printf("%.1f\n", (t1 - t0) / rounds);
	return 0;
}
