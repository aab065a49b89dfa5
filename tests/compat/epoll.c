/* epoll and eventfd: argument checks, level/edge/one-shot reporting and
 * its order, hang-ups, the file description rule, nesting, waiting and
 * waking, signals; eventfd's counter, semaphore mode, limits, readiness. */
#include "compat.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>

static int ep_wait(int ep, struct epoll_event *ev, int max, int ms) {
	int r = epoll_wait(ep, ev, max, ms);
	return r < 0 ? -errno : r;
}

static int add(int ep, int fd, uint32_t events, uint64_t data) {
	struct epoll_event e = {.events = events, .data.u64 = data};
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) ? -errno : 0;
}

static int mod(int ep, int fd, uint32_t events, uint64_t data) {
	struct epoll_event e = {.events = events, .data.u64 = data};
	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) ? -errno : 0;
}

static void errors(void) {
	EXPECT("create_zero_einval", RAW1(SYS_epoll_create, 0), -EINVAL);
	EXPECT("create1_bad_flags_einval", RAW1(SYS_epoll_create1, 1), -EINVAL);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK("create1_cloexec", ep >= 0 && (fcntl(ep, F_GETFD) & FD_CLOEXEC), "ep %d", ep);
	int p[2];
	pipe(p);
	int reg = open("/proc/self/exe", O_RDONLY);
	struct epoll_event e = {.events = EPOLLIN};
	EXPECT("regular_file_eperm", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, reg, &e), -EPERM);
	EXPECT("not_epoll_einval", RAW4(SYS_epoll_ctl, p[0], EPOLL_CTL_ADD, p[1], &e), -EINVAL);
	EXPECT("self_einval", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, ep, &e), -EINVAL);
	EXPECT("bad_fd_ebadf", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, 999, &e), -EBADF);
	EXPECT("bad_epfd_ebadf", RAW4(SYS_epoll_ctl, 999, EPOLL_CTL_ADD, p[0], &e), -EBADF);
	EXPECT("null_event_efault", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, p[0], NULL), -EFAULT);
	EXPECT("mod_missing_enoent", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, p[0], &e), -ENOENT);
	EXPECT("del_missing_enoent", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, p[0], NULL), -ENOENT);
	EXPECT("add", add(ep, p[0], EPOLLIN, 1), 0);
	EXPECT("add_twice_eexist", add(ep, p[0], EPOLLIN, 1), -EEXIST);
	EXPECT("bad_op_einval", RAW4(SYS_epoll_ctl, ep, 7, p[0], &e), -EINVAL);
	EXPECT("del_null_event", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, p[0], NULL), 0);
	EXPECT("exclusive_add", add(ep, p[0], EPOLLIN | EPOLLEXCLUSIVE, 1), 0);
	EXPECT("exclusive_mod_einval", mod(ep, p[0], EPOLLIN | EPOLLEXCLUSIVE, 1), -EINVAL);
	EXPECT("mod_of_exclusive_einval", mod(ep, p[0], EPOLLIN, 1), -EINVAL);
	int ep2 = epoll_create1(0);
	EXPECT("exclusive_epoll_target_einval", add(ep, ep2, EPOLLIN | EPOLLEXCLUSIVE, 1), -EINVAL);
	EXPECT("exclusive_with_oneshot_einval", add(ep2, p[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLONESHOT, 1), -EINVAL);
	struct epoll_event out[4];
	EXPECT("wait_zero_max_einval", ep_wait(ep, out, 0, 0), -EINVAL);
	EXPECT("wait_not_epoll_einval", ep_wait(p[0], out, 1, 0), -EINVAL);
	EXPECT("wait_kernel_buffer_efault", RAW4(SYS_epoll_wait, ep, 0xffff800000000000UL, 4, 0), -EFAULT);
	EXPECT("wait_unmapped_buffer_nothing_to_copy", RAW4(SYS_epoll_wait, ep, 16, 4, 0), 0);
	write(p[1], "z", 1);
	EXPECT("wait_unmapped_buffer_efault", RAW4(SYS_epoll_wait, ep, 16, 4, 0), -EFAULT);
	char z;
	read(p[0], &z, 1);
	EXPECT("wait_timeout_zero", ep_wait(ep, out, 4, 0), 0);
	struct timespec zero = {0, 0};
	EXPECT("pwait2_timeout_zero", RAW6(SYS_epoll_pwait2, ep, out, 4, &zero, NULL, 8), 0);
	close(reg), close(ep), close(ep2), close(p[0]), close(p[1]);
}

static void triggers(void) {
	int ep = epoll_create1(0), p[2];
	pipe(p);
	struct epoll_event out[4];
	add(ep, p[0], EPOLLIN, 0x1122334455667788ULL);
	write(p[1], "a", 1);
	int n = ep_wait(ep, out, 4, 1000);
	CHECK("level_reported", n == 1 && out[0].events == EPOLLIN && out[0].data.u64 == 0x1122334455667788ULL,
	      "n %d ev %#x", n, n > 0 ? out[0].events : 0);
	CHECK("level_again_until_read", ep_wait(ep, out, 4, 0) == 1, "not again");
	char c;
	read(p[0], &c, 1);
	EXPECT("level_gone_after_read", ep_wait(ep, out, 4, 0), 0);

	mod(ep, p[0], EPOLLIN | EPOLLET, 2);
	EXPECT("edge_nothing_yet", ep_wait(ep, out, 4, 0), 0);
	write(p[1], "b", 1);
	EXPECT("edge_reported", ep_wait(ep, out, 4, 1000), 1);
	EXPECT("edge_once", ep_wait(ep, out, 4, 0), 0);
	write(p[1], "c", 1);
	EXPECT("edge_new_data_again", ep_wait(ep, out, 4, 1000), 1);
	EXPECT("edge_mod_rearms_when_ready", mod(ep, p[0], EPOLLIN | EPOLLET, 3) == 0 && ep_wait(ep, out, 4, 0) == 1, 1);

	mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 4);
	EXPECT("oneshot_reported", ep_wait(ep, out, 4, 0), 1);
	write(p[1], "d", 1);
	EXPECT("oneshot_disarmed", ep_wait(ep, out, 4, 0), 0);
	EXPECT("oneshot_mod_rearms", mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 5) == 0 && ep_wait(ep, out, 4, 0) == 1, 1);
	char buf[16];
	read(p[0], buf, sizeof buf);

	/* Write end: OUT; after the reader goes, ERR too. Read end after the
	 * writer goes: HUP. */
	add(ep, p[1], EPOLLOUT, 6);
	n = ep_wait(ep, out, 4, 0);
	CHECK("write_end_out", n == 1 && out[0].events == EPOLLOUT && out[0].data.u64 == 6, "n %d", n);
	epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL);
	int q[2];
	pipe(q);
	add(ep, q[1], EPOLLOUT, 7);
	close(q[0]);
	n = ep_wait(ep, out, 4, 0);
	CHECK("write_end_reader_gone", n == 1 && out[0].events == (EPOLLOUT | EPOLLERR), "n %d ev %#x", n,
	      n > 0 ? out[0].events : 0);
	close(q[1]);
	EXPECT("closed_file_leaves", ep_wait(ep, out, 4, 0), 0);
	mod(ep, p[0], EPOLLIN | EPOLLRDHUP, 8);
	close(p[1]);
	n = ep_wait(ep, out, 4, 1000);
	CHECK("hangup_on_writer_close", n == 1 && out[0].events == EPOLLHUP, "n %d ev %#x", n, n > 0 ? out[0].events : 0);
	close(p[0]);
	close(ep);
}

static void order(void) {
	int ep = epoll_create1(0), p[3][2];
	for (int i = 0; i < 3; i++) {
		pipe(p[i]);
		add(ep, p[i][0], EPOLLIN, (uint64_t)i);
	}
	write(p[2][1], "x", 1), write(p[0][1], "x", 1), write(p[1][1], "x", 1);
	struct epoll_event out[4];
	int n = ep_wait(ep, out, 4, 0);
	CHECK("order_of_readiness", n == 3 && out[0].data.u64 == 2 && out[1].data.u64 == 0 && out[2].data.u64 == 1,
	      "n %d: %d %d %d", n, (int)out[0].data.u64, (int)out[1].data.u64, (int)out[2].data.u64);
	/* One at a time: a level-triggered item goes to the back. */
	int a = ep_wait(ep, out, 1, 0) == 1 ? (int)out[0].data.u64 : -1;
	int b = ep_wait(ep, out, 1, 0) == 1 ? (int)out[0].data.u64 : -1;
	int c = ep_wait(ep, out, 1, 0) == 1 ? (int)out[0].data.u64 : -1;
	int d = ep_wait(ep, out, 1, 0) == 1 ? (int)out[0].data.u64 : -1;
	CHECK("round_robin_with_max_one", a == 2 && b == 0 && c == 1 && d == 2, "%d %d %d %d", a, b, c, d);
	for (int i = 0; i < 3; i++)
		close(p[i][0]), close(p[i][1]);
	close(ep);
}

static void descriptions(void) {
	int ep = epoll_create1(0), p[2];
	pipe(p);
	add(ep, p[0], EPOLLIN, 42);
	int d = dup(p[0]);
	close(p[0]);
	write(p[1], "x", 1);
	struct epoll_event out[2];
	int n = ep_wait(ep, out, 2, 0);
	CHECK("item_follows_the_description", n == 1 && out[0].data.u64 == 42, "n %d", n);
	EXPECT("closed_fd_ebadf", RAW4(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, p[0], NULL), -EBADF);
	EXPECT("dup_is_another_item", add(ep, d, EPOLLIN, 43), 0);
	n = ep_wait(ep, out, 2, 0);
	CHECK("both_items_report", n == 2, "n %d", n);
	close(d);
	EXPECT("all_closed_none_left", ep_wait(ep, out, 2, 0), 0);
	close(p[1]);

	/* Nesting: an epoll inside another; loops are refused. */
	int inner = epoll_create1(0), outer = epoll_create1(0);
	pipe(p);
	add(inner, p[0], EPOLLIN, 1);
	EXPECT("nest_add", add(outer, inner, EPOLLIN, 99), 0);
	EXPECT("nest_loop_eloop", add(inner, outer, EPOLLIN, 1), -ELOOP);
	EXPECT("nest_quiet", ep_wait(outer, out, 2, 0), 0);
	write(p[1], "x", 1);
	n = ep_wait(outer, out, 2, 1000);
	CHECK("nest_reports_inner", n == 1 && out[0].data.u64 == 99 && out[0].events == EPOLLIN, "n %d", n);
	struct pollfd pf = {.fd = inner, .events = POLLIN};
	CHECK("poll_on_epoll", poll(&pf, 1, 0) == 1 && pf.revents == POLLIN, "revents %#x", pf.revents);
	int chain[6];
	chain[0] = inner;
	int deep = 0;
	for (int i = 1; i < 6; i++) {
		chain[i] = epoll_create1(0);
		if (add(chain[i], chain[i - 1], EPOLLIN, 0) == -ELOOP) {
			deep = i;
			break;
		}
	}
	CHECK("nest_depth_limited", deep != 0, "no ELOOP for 5 levels");
	close(p[0]), close(p[1]), close(inner), close(outer);
	close(ep);
}

static int wake_fd;
static void *later_write(void *arg) {
	(void)arg;
	struct timespec d = {0, 50000000};
	nanosleep(&d, NULL);
	uint64_t one = 1;
	write(wake_fd, &one, 8);
	return NULL;
}

static void on_usr1(int s) {
	(void)s;
}

static void waiting(void) {
	int ep = epoll_create1(0);
	wake_fd = eventfd(0, 0);
	add(ep, wake_fd, EPOLLIN, 5);
	pthread_t th;
	pthread_create(&th, NULL, later_write, NULL);
	struct epoll_event out[2];
	int n = ep_wait(ep, out, 2, 5000);
	CHECK("blocking_wait_woken_by_thread", n == 1 && out[0].data.u64 == 5, "n %d", n);
	pthread_join(th, NULL);
	uint64_t v;
	read(wake_fd, &v, 8);
	n = ep_wait(ep, out, 2, 100);
	EXPECT("timeout_expires", n, 0);

	/* A signal ends the wait with EINTR, SA_RESTART or not. */
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
	sigaction(SIGUSR1, &sa, NULL);
	pid_t parent = getpid();
	pid_t c = fork();
	if (c == 0) {
		struct timespec d = {0, 50000000};
		nanosleep(&d, NULL);
		kill(parent, SIGUSR1);
		_exit(0);
	}
	EXPECT("signal_eintr_despite_restart", ep_wait(ep, out, 2, 5000), -EINTR);
	waitpid(c, NULL, 0);
	/* epoll_pwait's mask: a blocked pending signal is taken during it. */
	sigset_t block, none;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGUSR1);
	sigemptyset(&none);
	int r = epoll_pwait(ep, out, 2, 1000, &none);
	CHECK("pwait_mask_lets_signal_in", r == -1 && errno == EINTR, "r %d errno %d", r, errno);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	close(wake_fd);
	close(ep);
}

static void eventfds(void) {
	int e = eventfd(3, EFD_NONBLOCK);
	uint64_t v = 0;
	EXPECT("eventfd_read_initial", read(e, &v, 8) == 8 && v == 3, 1);
	errno = 0;
	EXPECT("eventfd_empty_eagain", read(e, &v, 8) == -1 && errno == EAGAIN, 1);
	v = 5;
	write(e, &v, 8);
	v = 6;
	write(e, &v, 8);
	EXPECT("eventfd_writes_add", read(e, &v, 8) == 8 && v == 11, 1);
	EXPECT("eventfd_short_read_einval", RAW3(SYS_read, e, &v, 4), -EINVAL);
	EXPECT("eventfd_short_write_einval", RAW3(SYS_write, e, &v, 7), -EINVAL);
	v = UINT64_MAX;
	EXPECT("eventfd_write_max_einval", RAW3(SYS_write, e, &v, 8), -EINVAL);
	v = UINT64_MAX - 1;
	EXPECT("eventfd_write_to_limit", RAW3(SYS_write, e, &v, 8), 8);
	v = 1;
	EXPECT("eventfd_overflow_eagain", RAW3(SYS_write, e, &v, 8), -EAGAIN);
	struct pollfd pf = {.fd = e, .events = POLLIN | POLLOUT};
	poll(&pf, 1, 0);
	EXPECT("eventfd_full_in_not_out", pf.revents, POLLIN);
	read(e, &v, 8);
	pf.revents = 0;
	poll(&pf, 1, 0);
	EXPECT("eventfd_empty_out_not_in", pf.revents, POLLOUT);
	close(e);
	e = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
	uint64_t a = 0, b = 0;
	read(e, &a, 8), read(e, &b, 8);
	errno = 0;
	CHECK("eventfd_semaphore", a == 1 && b == 1 && read(e, &v, 8) == -1 && errno == EAGAIN, "%lu %lu", (unsigned long)a,
	      (unsigned long)b);
	close(e);
	EXPECT("eventfd2_bad_flags_einval", RAW2(SYS_eventfd2, 0, 0x10), -EINVAL);
	e = eventfd(0, EFD_CLOEXEC);
	CHECK("eventfd_cloexec", fcntl(e, F_GETFD) & FD_CLOEXEC, "not set");
	char path[64], link[64] = {0};
	snprintf(path, sizeof path, "/proc/self/fd/%d", e);
	readlink(path, link, sizeof link - 1);
	CHECK("eventfd_proc_link", strcmp(link, "anon_inode:[eventfd]") == 0, "%s", link);
	int ep = epoll_create1(0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", ep);
	memset(link, 0, sizeof link);
	readlink(path, link, sizeof link - 1);
	CHECK("epoll_proc_link", strcmp(link, "anon_inode:[eventpoll]") == 0, "%s", link);
	/* A blocking read waits for a write from another thread. */
	wake_fd = e;
	pthread_t th;
	pthread_create(&th, NULL, later_write, NULL);
	v = 0;
	CHECK("eventfd_blocking_read", read(e, &v, 8) == 8 && v == 1, "v %lu", (unsigned long)v);
	pthread_join(th, NULL);
	close(ep);
	close(e);
}

int main(void) {
	errors();
	triggers();
	order();
	descriptions();
	waiting();
	eventfds();
	return 0;
}
