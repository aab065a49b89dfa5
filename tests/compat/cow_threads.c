/* Copy-on-write under threads: while three threads write the same pages
 * over and over, the main thread forks (every fork shares the pages
 * copy-on-write again). Two threads then fault on one shared page at the
 * same moment; the one handled second must find the page already copied
 * and go on, not get SIGSEGV (a protection fault gone stale). */
#include "compat.h"
#include <pthread.h>
#include <sys/wait.h>

#define PAGES 16
#define PAGE 4096
static volatile char area[PAGES * PAGE] __attribute__((aligned(PAGE)));
static volatile int stop;

static void *writer(void *arg) {
	long id = (long)arg;
	unsigned long n = 0;
	while (!stop) {
		for (int p = 0; p < PAGES; p++)
			area[p * PAGE + id] = (char)n;
		n++;
	}
	return NULL;
}

int main(void) {
	pthread_t t[3];
	for (long i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, writer, (void *)i)) {
			FAIL("threads", "pthread_create");
			return 1;
		}
	int bad = 0;
	for (int i = 0; i < 300; i++) {
		pid_t c = fork();
		if (c == 0)
			_exit(area[0] == area[0] ? 0 : 1);
		int st = 0;
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st))
			bad++;
	}
	stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	CHECK("fork_while_threads_write", bad == 0, "%d forks went wrong", bad);
	return 0;
}
