/* argv[1] = "fork" (fork, child exits, parent waits), "exec" (fork, child
 * execs argv[3], parent waits) or "pipe" (one byte there and back between
 * two processes over two pipes); argv[2] = iterations. Prints the mean time
 * per iteration in ns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int spawn_wait(const char *exe) {
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		if (exe) {
			char *argv[] = {(char *)exe, NULL};
			execv(exe, argv);
		}
		_exit(exe ? 127 : 0);
	}
	int st;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

static int ping_pong(long n) {
	int there[2], back[2];
	if (pipe(there) || pipe(back))
		return -1;
	pid_t p = fork();
	if (p < 0)
		return -1;
	char c = 'x';
	if (p == 0) {
		close(there[1]);
		close(back[0]);
		while (read(there[0], &c, 1) == 1)
			if (write(back[1], &c, 1) != 1)
				_exit(1);
		_exit(0);
	}
	close(there[0]);
	close(back[1]);
	for (long i = 0; i < n; i++)
		if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1)
			return -1;
	close(there[1]);
	int st;
	waitpid(p, &st, 0);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3)
		return 2;
	long n = atol(argv[2]);
	if (n <= 0)
		return 2;
	double t0 = now_ns();
	if (strcmp(argv[1], "pipe") == 0) {
		if (ping_pong(n))
			return 1;
	} else {
		const char *exe = strcmp(argv[1], "exec") == 0 ? argv[3] : NULL;
		if (strcmp(argv[1], "exec") == 0 && !exe)
			return 2;
		for (long i = 0; i < n; i++)
			if (spawn_wait(exe))
				return 1;
	}
	printf("%.1f\n", (now_ns() - t0) / n);
	return 0;
}
