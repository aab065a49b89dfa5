/* timerfd and signalfd: argument checks, expiry counts, absolute and
 * periodic timers, settings read back; signals read as signalfd_siginfo
 * (kill/tkill, sigqueue, SIGCHLD), masks, readiness; and one event loop
 * combining epoll, timerfd, signalfd and eventfd. */
#include "compat.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>

static long long now_ns(clockid_t c) {
	struct timespec t;
	clock_gettime(c, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int link_is(int fd, const char *want) {
	char path[64], link[64] = {0};
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	readlink(path, link, sizeof link - 1);
	return strcmp(link, want) == 0;
}

static void timerfds(void) {
	EXPECT("create_bad_clock_einval", RAW2(SYS_timerfd_create, 12345, 0), -EINVAL);
	EXPECT("create_cputime_clock_einval", RAW2(SYS_timerfd_create, CLOCK_PROCESS_CPUTIME_ID, 0), -EINVAL);
	EXPECT("create_bad_flags_einval", RAW2(SYS_timerfd_create, CLOCK_MONOTONIC, 1), -EINVAL);
	int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	CHECK("create_cloexec", t >= 0 && (fcntl(t, F_GETFD) & FD_CLOEXEC), "t %d", t);
	CHECK("proc_link", link_is(t, "anon_inode:[timerfd]"), "link");
	struct itimerspec its = {0}, old;
	EXPECT("settime_bad_flags_einval", RAW4(SYS_timerfd_settime, t, 4, &its, NULL), -EINVAL);
	its.it_value.tv_nsec = 1000000000;
	EXPECT("settime_bad_nsec_einval", RAW4(SYS_timerfd_settime, t, 0, &its, NULL), -EINVAL);
	its.it_value.tv_nsec = 1000;
	int p[2];
	pipe(p);
	EXPECT("settime_not_timerfd_einval", RAW4(SYS_timerfd_settime, p[0], 0, &its, NULL), -EINVAL);
	EXPECT("settime_bad_fd_ebadf", RAW4(SYS_timerfd_settime, 999, 0, &its, NULL), -EBADF);
	EXPECT("settime_null_efault", RAW4(SYS_timerfd_settime, t, 0, NULL, NULL), -EFAULT);
	EXPECT("gettime_not_timerfd_einval", RAW2(SYS_timerfd_gettime, p[0], &old), -EINVAL);
	close(p[0]), close(p[1]);
	struct itimerspec cur;
	timerfd_gettime(t, &cur);
	CHECK("disarmed_reads_zero", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0 && cur.it_interval.tv_nsec == 0,
	      "%ld", cur.it_value.tv_nsec);
	uint64_t n = 0;
	errno = 0;
	CHECK("read_disarmed_eagain", read(t, &n, 8) == -1 && errno == EAGAIN, "errno %d", errno);
	EXPECT("short_read_einval", RAW3(SYS_read, t, &n, 4), -EINVAL);
	EXPECT("write_einval", RAW3(SYS_write, t, &n, 8), -EINVAL);

	/* One-shot, relative: read blocks until it, at least 30 ms later. */
	int b = timerfd_create(CLOCK_MONOTONIC, 0);
	its = (struct itimerspec){.it_value = {0, 30000000}};
	long long t0 = now_ns(CLOCK_MONOTONIC);
	timerfd_settime(b, 0, &its, NULL);
	timerfd_gettime(b, &cur);
	CHECK("gettime_armed", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 30000000,
	      "%ld", cur.it_value.tv_nsec);
	int r = read(b, &n, 8);
	long long el = now_ns(CLOCK_MONOTONIC) - t0;
	CHECK("oneshot_blocks_then_one", r == 8 && n == 1 && el >= 30000000, "r %d n %lu el %lld", r, (unsigned long)n, el);
	timerfd_gettime(b, &cur);
	CHECK("oneshot_then_disarmed", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0, "%ld", cur.it_value.tv_nsec);

	/* Periodic: expiries accumulate until read. */
	its = (struct itimerspec){.it_value = {0, 10000000}, .it_interval = {0, 10000000}};
	timerfd_settime(b, 0, &its, &old);
	CHECK("old_value_of_disarmed", old.it_value.tv_sec == 0 && old.it_value.tv_nsec == 0, "%ld", old.it_value.tv_nsec);
	struct timespec d = {0, 55000000};
	nanosleep(&d, NULL);
	read(b, &n, 8);
	CHECK("periodic_counts", n >= 3 && n <= 8, "n %lu", (unsigned long)n);
	timerfd_gettime(b, &cur);
	CHECK("periodic_interval_read_back", cur.it_interval.tv_nsec == 10000000 && cur.it_value.tv_nsec <= 10000000,
	      "%ld %ld", cur.it_interval.tv_nsec, cur.it_value.tv_nsec);
	/* A new setting forgets expiries not read. */
	nanosleep(&d, NULL);
	its = (struct itimerspec){.it_value = {10, 0}};
	timerfd_settime(b, 0, &its, &old);
	CHECK("old_value_periodic", old.it_interval.tv_nsec == 10000000, "%ld", old.it_interval.tv_nsec);
	fcntl(b, F_SETFL, O_NONBLOCK);
	errno = 0;
	CHECK("settime_resets_count", read(b, &n, 8) == -1 && errno == EAGAIN, "errno %d", errno);
	its = (struct itimerspec){0};
	timerfd_settime(b, 0, &its, NULL);
	timerfd_gettime(b, &cur);
	CHECK("disarm", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0, "%ld", (long)cur.it_value.tv_sec);

	/* Absolute, on CLOCK_REALTIME (with TFD_TIMER_CANCEL_ON_SET). */
	int a = timerfd_create(CLOCK_REALTIME, 0);
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	long long target = rt.tv_sec * 1000000000LL + rt.tv_nsec + 20000000;
	its = (struct itimerspec){.it_value = {target / 1000000000, target % 1000000000}};
	EXPECT("abstime_cancel_on_set_accepted", timerfd_settime(a, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL), 0);
	r = read(a, &n, 8);
	CHECK("abstime_fires_not_early", r == 8 && n == 1 && now_ns(CLOCK_REALTIME) >= target, "r %d", r);
	/* In the past: fires at once. */
	its.it_value.tv_sec -= 100;
	timerfd_settime(a, TFD_TIMER_ABSTIME, &its, NULL);
	struct pollfd pf = {.fd = a, .events = POLLIN};
	CHECK("abstime_past_fires_at_once", poll(&pf, 1, 1000) == 1 && pf.revents == POLLIN, "revents %#x", pf.revents);
	close(a), close(b), close(t);
}

static void signalfds(void) {
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	EXPECT("bad_flags_einval", RAW4(SYS_signalfd4, -1, &m, 8, 1), -EINVAL);
	EXPECT("bad_size_einval", RAW4(SYS_signalfd4, -1, &m, 4, 0), -EINVAL);
	EXPECT("bad_mask_efault", RAW4(SYS_signalfd4, -1, 16, 8, 0), -EFAULT);
	int p[2];
	pipe(p);
	EXPECT("not_signalfd_einval", RAW4(SYS_signalfd4, p[0], &m, 8, 0), -EINVAL);
	close(p[0]), close(p[1]);
	sigset_t all;
	sigfillset(&all);
	int full = signalfd(-1, &all, 0);
	CHECK("kill_stop_in_mask_ignored", full >= 0, "errno %d", errno);
	close(full);

	sigprocmask(SIG_BLOCK, &m, NULL);
	int s = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	CHECK("create", s >= 0 && (fcntl(s, F_GETFD) & FD_CLOEXEC), "s %d", s);
	CHECK("proc_link", link_is(s, "anon_inode:[signalfd]"), "link");
	struct signalfd_siginfo si[2];
	errno = 0;
	CHECK("none_eagain", read(s, si, sizeof si) == -1 && errno == EAGAIN, "errno %d", errno);
	EXPECT("short_buffer_einval", RAW3(SYS_read, s, si, 100), -EINVAL);
	struct pollfd pf = {.fd = s, .events = POLLIN};
	EXPECT("not_ready", poll(&pf, 1, 0), 0);
	raise(SIGUSR1);
	EXPECT("ready_when_pending", poll(&pf, 1, 0) == 1 && pf.revents == POLLIN, 1);
	int r = read(s, si, sizeof si);
	CHECK("raise_read", r == 128 && si[0].ssi_signo == SIGUSR1 && si[0].ssi_code == SI_TKILL &&
				   si[0].ssi_pid == (uint32_t)getpid() && si[0].ssi_uid == getuid(),
	      "r %d signo %u code %d pid %u", r, si[0].ssi_signo, si[0].ssi_code, si[0].ssi_pid);
	sigset_t pend;
	sigpending(&pend);
	CHECK("taken_not_pending", !sigismember(&pend, SIGUSR1), "still pending");
	/* A new mask through the same descriptor; two records in one read. */
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	EXPECT("mask_change_same_fd", signalfd(s, &m, 0), s);
	union sigval v = {.sival_int = 1234};
	sigqueue(getpid(), SIGUSR2, v);
	kill(getpid(), SIGUSR1);
	r = read(s, si, sizeof si);
	CHECK("two_records_lowest_first", r == 256 && si[0].ssi_signo == SIGUSR1 && si[0].ssi_code == SI_USER &&
						  si[1].ssi_signo == SIGUSR2 && si[1].ssi_code == SI_QUEUE &&
						  si[1].ssi_int == 1234 && si[1].ssi_ptr == 1234,
	      "r %d %u %d %u %d %d", r, si[0].ssi_signo, si[0].ssi_code, si[1].ssi_signo, si[1].ssi_code, si[1].ssi_int);

	/* SIGCHLD: the child's pid and status. */
	sigset_t c;
	sigemptyset(&c);
	sigaddset(&c, SIGCHLD);
	sigprocmask(SIG_BLOCK, &c, NULL);
	int cs = signalfd(-1, &c, 0);
	pid_t child = fork();
	if (child == 0)
		_exit(7);
	r = read(cs, si, sizeof si[0]);
	CHECK("sigchld_through_signalfd", r == 128 && si[0].ssi_signo == SIGCHLD && si[0].ssi_code == CLD_EXITED &&
						  si[0].ssi_pid == (uint32_t)child && si[0].ssi_status == 7,
	      "r %d signo %u code %d pid %u status %d", r, si[0].ssi_signo, si[0].ssi_code, si[0].ssi_pid, si[0].ssi_status);
	waitpid(child, NULL, 0);
	close(cs);
	close(s);
}

static int evfd;
static void *poke(void *arg) {
	(void)arg;
	struct timespec d = {0, 30000000};
	nanosleep(&d, NULL);
	uint64_t one = 1;
	write(evfd, &one, 8);
	return NULL;
}

/* One loop over epoll: a periodic timerfd, a signalfd (SIGUSR1 from a
 * child process), an eventfd (from a thread). */
static void combined(void) {
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigprocmask(SIG_BLOCK, &m, NULL);
	int ep = epoll_create1(0);
	int tf = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	int sf = signalfd(-1, &m, SFD_NONBLOCK);
	evfd = eventfd(0, EFD_NONBLOCK);
	struct itimerspec its = {.it_value = {0, 20000000}, .it_interval = {0, 20000000}};
	timerfd_settime(tf, 0, &its, NULL);
	struct epoll_event e = {.events = EPOLLIN};
	e.data.u32 = 1, epoll_ctl(ep, EPOLL_CTL_ADD, tf, &e);
	e.data.u32 = 2, epoll_ctl(ep, EPOLL_CTL_ADD, sf, &e);
	e.data.u32 = 4, epoll_ctl(ep, EPOLL_CTL_ADD, evfd, &e);
	pthread_t th;
	pthread_create(&th, NULL, poke, NULL);
	pid_t parent = getpid();
	pid_t c = fork();
	if (c == 0) {
		struct timespec d = {0, 50000000};
		nanosleep(&d, NULL);
		kill(parent, SIGUSR1);
		_exit(0);
	}
	unsigned seen = 0, ticks = 0, loops = 0;
	while (seen != 7 && loops++ < 200) {
		struct epoll_event out[4];
		int n = epoll_wait(ep, out, 4, 2000);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			uint64_t v;
			struct signalfd_siginfo si;
			switch (out[i].data.u32) {
			case 1:
				if (read(tf, &v, 8) == 8)
					ticks += v, seen |= ticks >= 3 ? 1 : 0;
				break;
			case 2:
				if (read(sf, &si, sizeof si) == sizeof si && si.ssi_signo == SIGUSR1)
					seen |= 2;
				break;
			case 4:
				if (read(evfd, &v, 8) == 8)
					seen |= 4;
				break;
			}
		}
	}
	CHECK("combined_loop", seen == 7, "seen %u after %u loops", seen, loops);
	pthread_join(th, NULL);
	waitpid(c, NULL, 0);
	close(ep), close(tf), close(sf), close(evfd);
}

/* Several waiters, one event: every epoll instance and every poll()
 * watching the file wakes; a semaphore eventfd's count of 3 ends three
 * blocked reads; a plain eventfd's value goes to one reader at a time;
 * an edge-triggered event on one shared epoll instance reaches exactly
 * one of its waiters. */
struct waiter {
	int kind; /* 0: own epoll, 1: poll, 2: read, 3: shared epoll */
	int fd;
	int ep;
	long got;
};

static void *wait_one(void *arg) {
	struct waiter *w = arg;
	struct epoll_event ev;
	if (w->kind == 0) {
		w->got = epoll_wait(w->ep, &ev, 1, 5000) == 1 ? (long)ev.events : -1;
	} else if (w->kind == 1) {
		struct pollfd p = {.fd = w->fd, .events = POLLIN};
		w->got = poll(&p, 1, 5000) == 1 ? p.revents : -1;
	} else if (w->kind == 2) {
		uint64_t v = 0;
		w->got = read(w->fd, &v, 8) == 8 ? (long)v : -1;
	} else {
		w->got = epoll_wait(w->ep, &ev, 1, 300) == 1 ? 1 : 0;
	}
	return NULL;
}

static void start_waiters(struct waiter *w, pthread_t *th, int n) {
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, wait_one, &w[i]);
	usleep(100000); /* let them block */
}

static void join_waiters(pthread_t *th, int n) {
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void waiters(void) {
	int efd = eventfd(0, 0);
	struct waiter w[5];
	pthread_t th[5];
	for (int i = 0; i < 5; i++) {
		w[i] = (struct waiter){.kind = i < 3 ? 0 : 1, .fd = efd, .ep = -1, .got = 0};
		if (i < 3) {
			w[i].ep = epoll_create1(0);
			struct epoll_event ev = {.events = EPOLLIN};
			epoll_ctl(w[i].ep, EPOLL_CTL_ADD, efd, &ev);
		}
	}
	start_waiters(w, th, 5);
	uint64_t one = 1;
	write(efd, &one, 8);
	join_waiters(th, 5);
	int woke = 0;
	for (int i = 0; i < 5; i++)
		woke += w[i].got == (i < 3 ? EPOLLIN : POLLIN);
	EXPECT("one_event_wakes_every_epoll_and_poll", woke, 5);
	for (int i = 0; i < 3; i++)
		close(w[i].ep);
	close(efd);

	efd = eventfd(0, EFD_SEMAPHORE);
	for (int i = 0; i < 3; i++)
		w[i] = (struct waiter){.kind = 2, .fd = efd};
	start_waiters(w, th, 3);
	uint64_t three = 3;
	write(efd, &three, 8);
	join_waiters(th, 3);
	CHECK("semaphore_count_ends_three_reads", w[0].got == 1 && w[1].got == 1 && w[2].got == 1, "%ld %ld %ld",
	      w[0].got, w[1].got, w[2].got);
	close(efd);

	efd = eventfd(0, 0);
	for (int i = 0; i < 2; i++)
		w[i] = (struct waiter){.kind = 2, .fd = efd};
	start_waiters(w, th, 2);
	uint64_t five = 5, seven = 7;
	write(efd, &five, 8);
	usleep(100000);
	int done = (w[0].got != 0) + (w[1].got != 0);
	EXPECT("plain_value_goes_to_one_reader", done, 1);
	write(efd, &seven, 8);
	join_waiters(th, 2);
	CHECK("next_value_to_the_other", w[0].got + w[1].got == 12 && w[0].got * w[1].got == 35, "%ld %ld", w[0].got,
	      w[1].got);
	close(efd);

	efd = eventfd(0, 0);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	for (int i = 0; i < 2; i++)
		w[i] = (struct waiter){.kind = 3, .fd = efd, .ep = ep};
	start_waiters(w, th, 2);
	write(efd, &one, 8);
	join_waiters(th, 2);
	EXPECT("edge_event_reaches_one_shared_waiter", w[0].got + w[1].got, 1);
	close(ep);
	close(efd);

	int p[2];
	pipe(p);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct waiter){.kind = 0, .fd = p[0], .ep = epoll_create1(0)};
		struct epoll_event e = {.events = EPOLLIN};
		epoll_ctl(w[i].ep, EPOLL_CTL_ADD, p[0], &e);
	}
	start_waiters(w, th, 2);
	close(p[1]);
	join_waiters(th, 2);
	CHECK("writer_close_hangs_up_every_waiter", w[0].got == EPOLLHUP && w[1].got == EPOLLHUP, "%lx %lx",
	      w[0].got, w[1].got);
	close(w[0].ep), close(w[1].ep), close(p[0]);
}

int main(void) {
	timerfds();
	signalfds();
	combined();
	waiters();
	return 0;
}
