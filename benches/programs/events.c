/* argv[1] = "unix" (a client process sends a 64-byte request over a
 * connected AF_UNIX stream socket to a server process, which answers with
 * 64 bytes: one request/response round trip per iteration), "unix-dgram"
 * (the same over a datagram socketpair) or "epoll" (two threads, each
 * blocked in epoll_wait on its own eventfd, hand a token back and forth:
 * one iteration = two epoll_wait wake-ups); argv[2] = iterations. Prints
 * the mean time per iteration in ns. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long rounds;

static double now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int full(int fd, char *buf, int n) {
	for (int got = 0; got < n;) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

static int unix_rtt(int type) {
	int sv[2];
	if (type == SOCK_STREAM) {
		/* A listening socket on an abstract address and a connection,
		 * as a server and its client have. */
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "rvisor-bench-%d", getpid());
		socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1);
		int l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&a, len) || listen(l, 1))
			return 1;
		sv[0] = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(sv[0], (struct sockaddr *)&a, len))
			return 1;
		sv[1] = accept(l, NULL, NULL);
		close(l);
	} else if (socketpair(AF_UNIX, type, 0, sv)) {
		return 1;
	}
	char buf[64] = {0};
	pid_t c = fork();
	if (c == 0) {
		close(sv[0]);
		for (long i = 0; i < rounds; i++)
			if (full(sv[1], buf, 64) || write(sv[1], buf, 64) != 64)
				_exit(1);
		_exit(0);
	}
	close(sv[1]);
	double t0 = now_ns();
	for (long i = 0; i < rounds; i++)
		if (write(sv[0], buf, 64) != 64 || full(sv[0], buf, 64))
			return 1;
	double t1 = now_ns();
	int st;
	waitpid(c, &st, 0);
	if (st != 0)
		return 1;
	printf("%.1f\n", (t1 - t0) / rounds);
	return 0;
}

struct side {
	int ep, mine, theirs;
};

static int step(struct side *s) {
	struct epoll_event ev;
	uint64_t v;
	if (epoll_wait(s->ep, &ev, 1, -1) != 1 || read(s->mine, &v, 8) != 8)
		return -1;
	v = 1;
	return write(s->theirs, &v, 8) == 8 ? 0 : -1;
}

static void *partner(void *arg) {
	for (long i = 0; i < rounds; i++)
		if (step(arg))
			exit(1);
	return NULL;
}

static int epoll_side(struct side *s, int mine, int theirs) {
	s->ep = epoll_create1(0);
	s->mine = mine;
	s->theirs = theirs;
	struct epoll_event ev = {.events = EPOLLIN};
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, mine, &ev);
}

static int epoll_rtt(void) {
	int a = eventfd(0, 0), b = eventfd(0, 0);
	struct side main_side, other;
	if (epoll_side(&main_side, a, b) || epoll_side(&other, b, a))
		return 1;
	pthread_t th;
	pthread_create(&th, NULL, partner, &other);
	double t0 = now_ns();
	uint64_t one = 1;
	for (long i = 0; i < rounds; i++) {
		if (write(b, &one, 8) != 8)
			return 1;
		struct epoll_event ev;
		if (epoll_wait(main_side.ep, &ev, 1, -1) != 1 || read(a, &one, 8) != 8)
			return 1;
	}
	double t1 = now_ns();
	pthread_join(th, NULL);
	printf("%.1f\n", (t1 - t0) / rounds);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3)
		return 2;
	rounds = atol(argv[2]);
	if (rounds <= 0)
		return 2;
	if (strcmp(argv[1], "unix") == 0)
		return unix_rtt(SOCK_STREAM);
	if (strcmp(argv[1], "unix-dgram") == 0)
		return unix_rtt(SOCK_DGRAM);
	if (strcmp(argv[1], "epoll") == 0)
		return epoll_rtt();
	return 2;
}
