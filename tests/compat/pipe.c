/* Pipes and FIFOs: capacity, atomic writes up to PIPE_BUF, end of file,
 * EAGAIN, EPIPE and SIGPIPE, FIONREAD, F_GETPIPE_SZ/F_SETPIPE_SZ, O_DIRECT
 * packets, named pipes, splice and tee; poll, ppoll, select and pselect6
 * readiness. argv[1] is the fixture directory (its rw/ is writable). */
#include "compat.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#define F_GETPIPE_SZ 1032
#endif

static int wait_status(pid_t p) {
	int st = -1;
	waitpid(p, &st, 0);
	return st;
}

static void basics(void) {
	int p[2];
	EXPECT("pipe2_bad_flags", pipe2(p, 0x1234) < 0 ? -errno : 0, -EINVAL);
	EXPECT("pipe2", pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	CHECK("pipe2_flags", (fcntl(p[0], F_GETFL) & O_NONBLOCK) && (fcntl(p[1], F_GETFD) & FD_CLOEXEC) &&
				     (fcntl(p[0], F_GETFL) & O_ACCMODE) == O_RDONLY &&
				     (fcntl(p[1], F_GETFL) & O_ACCMODE) == O_WRONLY,
	      "flags %#x %#x", fcntl(p[0], F_GETFL), fcntl(p[1], F_GETFL));
	char buf[70000];
	EXPECT("empty_nonblock_read", read(p[0], buf, 10) < 0 ? -errno : 0, -EAGAIN);
	EXPECT("getpipe_sz", fcntl(p[1], F_GETPIPE_SZ), 65536);
	/* Fill it: 64 KiB in page-sized writes, then EAGAIN. */
	memset(buf, 'x', sizeof buf);
	long total = 0;
	for (;;) {
		ssize_t n = write(p[1], buf, 4096);
		if (n < 0)
			break;
		total += n;
	}
	EXPECT("capacity", total, 65536);
	EXPECT("full_eagain", errno, EAGAIN);
	int avail = -1;
	ioctl(p[0], FIONREAD, &avail);
	EXPECT("fionread", avail, 65536);
	EXPECT("setpipe_sz_busy", fcntl(p[1], F_SETPIPE_SZ, 4096) < 0 ? -errno : 0, -EBUSY);
	EXPECT("read_some", read(p[0], buf, 100), 100);
	/* A small write goes in only if its page has room: the first page
	 * has 100 free bytes... but at the front: still full. */
	EXPECT("small_write_full", write(p[1], buf, 10) < 0 ? -errno : 0, -EAGAIN);
	while (read(p[0], buf, sizeof buf) > 0)
		;
	EXPECT("setpipe_sz_round", fcntl(p[1], F_SETPIPE_SZ, 5000), 8192);
	EXPECT("setpipe_sz_min", fcntl(p[1], F_SETPIPE_SZ, 1), 4096);
	EXPECT("setpipe_sz_max", fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
	int dn = open("/dev/null", O_RDONLY);
	EXPECT("setpipe_sz_not_pipe", fcntl(dn, F_SETPIPE_SZ, 4096) < 0 ? -errno : 0, -EBADF);
	close(dn);
	/* A write larger than the room, non-blocking: partial. */
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	EXPECT("partial_nonblock_write", write(p[1], buf, 10000), 4096);
	/* End of file once every writer is gone. */
	close(p[1]);
	while (read(p[0], buf, sizeof buf) > 0)
		;
	EXPECT("eof", read(p[0], buf, 10), 0);
	close(p[0]);

	EXPECT("pread_espipe", (pipe(p), pread(p[0], buf, 1, 0)) < 0 ? -errno : 0, -ESPIPE);
	EXPECT("lseek_espipe", lseek(p[0], 0, SEEK_SET) < 0 ? -errno : 0, -ESPIPE);
	struct stat st;
	fstat(p[0], &st);
	CHECK("fstat_fifo", S_ISFIFO(st.st_mode), "mode %o", st.st_mode);
	EXPECT("write_to_read_end", write(p[0], "x", 1) < 0 ? -errno : 0, -EBADF);
	close(p[0]);
	/* No reader: EPIPE, and SIGPIPE (ignored here). */
	signal(SIGPIPE, SIG_IGN);
	EXPECT("epipe", write(p[1], "x", 1) < 0 ? -errno : 0, -EPIPE);
	signal(SIGPIPE, SIG_DFL);
	pid_t c = fork();
	if (c == 0) {
		write(p[1], "x", 1);
		_exit(0);
	}
	int s = wait_status(c);
	CHECK("sigpipe_kills", WIFSIGNALED(s) && WTERMSIG(s) == SIGPIPE, "status %#x", s);
	close(p[1]);
}

static void atomicity(void) {
	/* Two writers of PIPE_BUF records: every record arrives whole. */
	int p[2];
	pipe(p);
	pid_t w[2];
	for (int i = 0; i < 2; i++) {
		w[i] = fork();
		if (w[i] == 0) {
			char rec[PIPE_BUF];
			memset(rec, 'a' + i, sizeof rec);
			close(p[0]);
			for (int k = 0; k < 64; k++)
				if (write(p[1], rec, sizeof rec) != sizeof rec)
					_exit(1);
			_exit(0);
		}
	}
	close(p[1]);
	char rec[PIPE_BUF];
	int records = 0, torn = 0;
	for (;;) {
		size_t got = 0;
		while (got < sizeof rec) {
			ssize_t n = read(p[0], rec + got, sizeof rec - got);
			if (n <= 0)
				break;
			got += n;
		}
		if (got == 0)
			break;
		for (size_t i = 1; i < got; i++)
			if (rec[i] != rec[0])
				torn++;
		records++;
	}
	int ok = WEXITSTATUS(wait_status(w[0])) == 0 && WEXITSTATUS(wait_status(w[1])) == 0;
	CHECK("pipe_buf_atomic", ok && records == 128 && torn == 0, "records %d torn %d", records, torn);
	close(p[0]);

	/* Blocking writer of more than the capacity: all of it arrives. */
	pipe(p);
	pid_t c = fork();
	if (c == 0) {
		static char big[300000];
		memset(big, 'b', sizeof big);
		close(p[0]);
		_exit(write(p[1], big, sizeof big) == sizeof big ? 0 : 1);
	}
	close(p[1]);
	long total = 0;
	char buf[8192];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof buf)) > 0)
		total += n;
	CHECK("big_blocking_write", total == 300000 && WEXITSTATUS(wait_status(c)) == 0, "total %ld", total);
	close(p[0]);
}

static void packets(void) {
	int p[2];
	EXPECT("pipe2_direct", pipe2(p, O_DIRECT), 0);
	write(p[1], "hello", 5);
	write(p[1], "world!", 6);
	char buf[16];
	EXPECT("packet_cut", read(p[0], buf, 3), 3);
	EXPECT("packet_next", read(p[0], buf, sizeof buf), 6);
	CHECK("packet_data", memcmp(buf, "world!", 6) == 0, "%.6s", buf);
	close(p[0]);
	close(p[1]);
}

static void fifos(const char *dir) {
	char path[4096];
	snprintf(path, sizeof path, "%s/rw/fifo", dir);
	EXPECT("mkfifo", mkfifo(path, 0644), 0);
	struct stat st;
	stat(path, &st);
	CHECK("fifo_stat", S_ISFIFO(st.st_mode), "mode %o", st.st_mode);
	EXPECT("fifo_writer_no_reader", open(path, O_WRONLY | O_NONBLOCK) < 0 ? -errno : 0, -ENXIO);
	int r = open(path, O_RDONLY | O_NONBLOCK);
	CHECK("fifo_reader_nonblock", r >= 0, "%s", strerror(errno));
	int w = open(path, O_WRONLY | O_NONBLOCK);
	CHECK("fifo_writer_with_reader", w >= 0, "%s", strerror(errno));
	write(w, "fifo", 4);
	char buf[8] = {0};
	EXPECT("fifo_read", read(r, buf, sizeof buf), 4);
	close(w);
	EXPECT("fifo_eof", read(r, buf, sizeof buf), 0);
	close(r);
	/* A blocking reader open waits for a writer. */
	pid_t c = fork();
	if (c == 0) {
		usleep(20000);
		int fd = open(path, O_WRONLY);
		write(fd, "late", 4);
		_exit(0);
	}
	r = open(path, O_RDONLY);
	memset(buf, 0, sizeof buf);
	ssize_t n = read(r, buf, sizeof buf);
	CHECK("fifo_blocking_open", n == 4 && memcmp(buf, "late", 4) == 0, "n %zd", n);
	wait_status(c);
	close(r);
	int rw = open(path, O_RDWR);
	CHECK("fifo_rdwr_never_waits", rw >= 0, "%s", strerror(errno));
	close(rw);
	unlink(path);
}

static void splices(const char *dir) {
	int a[2], b[2];
	pipe(a);
	pipe(b);
	write(a[1], "spliced!", 8);
	EXPECT("splice_pipe_pipe", splice(a[0], NULL, b[1], NULL, 100, 0), 8);
	EXPECT("tee", (write(a[1], "teed", 4), tee(a[0], b[1], 100, 0)), 4);
	char buf[32] = {0};
	EXPECT("tee_result", read(b[0], buf, sizeof buf), 12);
	CHECK("tee_data", memcmp(buf, "spliced!teed", 12) == 0, "%.12s", buf);
	EXPECT("tee_leaves_source", read(a[0], buf, sizeof buf), 4);
	EXPECT("splice_same_pipe", splice(a[0], NULL, a[1], NULL, 1, 0) < 0 ? -errno : 0, -EINVAL);
	EXPECT("splice_nonblock_empty", splice(a[0], NULL, b[1], NULL, 1, SPLICE_F_NONBLOCK) < 0 ? -errno : 0, -EAGAIN);
	/* File to pipe and pipe to file, with offsets. */
	char path[4096];
	snprintf(path, sizeof path, "%s/rw/splicefile", dir);
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	write(f, "0123456789", 10);
	loff_t off = 3;
	EXPECT("splice_file_pipe", splice(f, &off, b[1], NULL, 4, 0), 4);
	EXPECT("splice_offset_moved", off, 7);
	EXPECT("splice_file_pos_kept", lseek(f, 0, SEEK_CUR), 10);
	off = 0;
	EXPECT("splice_pipe_file", splice(b[0], NULL, f, &off, 100, 0), 4);
	pread(f, buf, 4, 0);
	CHECK("splice_pipe_file_data", memcmp(buf, "3456", 4) == 0, "%.4s", buf);
	EXPECT("splice_offset_on_pipe", splice(b[0], &off, f, NULL, 1, 0) < 0 ? -errno : 0, -ESPIPE);
	EXPECT("splice_no_pipe", splice(f, NULL, f, NULL, 1, 0) < 0 ? -errno : 0, -EINVAL);
	close(a[1]);
	EXPECT("splice_eof", splice(a[0], NULL, b[1], NULL, 10, 0), 0);
	close(f);
	unlink(path);
	close(a[0]);
	close(b[0]);
	close(b[1]);
}

static void on_usr1(int s) {
	(void)s;
}

static void readiness(void) {
	int p[2];
	pipe(p);
	struct pollfd fds[3] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {999, POLLIN, 0}};
	int n = poll(fds, 3, 0);
	CHECK("poll_initial", n == 2 && fds[0].revents == 0 && fds[1].revents == POLLOUT && fds[2].revents == POLLNVAL,
	      "n %d %#x %#x %#x", n, fds[0].revents, fds[1].revents, fds[2].revents);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	n = poll(fds, 1, 50);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK("poll_timeout", n == 0 && ms >= 45, "n %d after %ld ms", n, ms);
	write(p[1], "x", 1);
	n = poll(fds, 1, -1);
	CHECK("poll_readable", n == 1 && fds[0].revents == POLLIN, "n %d %#x", n, fds[0].revents);
	/* A writer elsewhere wakes a blocked poll. */
	char c;
	read(p[0], &c, 1);
	pid_t w = fork();
	if (w == 0) {
		usleep(20000);
		write(p[1], "y", 1);
		_exit(0);
	}
	n = poll(fds, 1, 5000);
	CHECK("poll_woken", n == 1 && fds[0].revents == POLLIN, "n %d %#x", n, fds[0].revents);
	wait_status(w);
	read(p[0], &c, 1);
	close(p[1]);
	n = poll(fds, 1, 0);
	CHECK("poll_hup", n == 1 && fds[0].revents == POLLHUP, "n %d %#x", n, fds[0].revents);
	close(p[0]);
	pipe(p);
	close(p[0]);
	struct pollfd wf = {p[1], POLLOUT, 0};
	n = poll(&wf, 1, 0);
	CHECK("poll_err_no_reader", n == 1 && (wf.revents & POLLERR), "n %d %#x", n, wf.revents);
	close(p[1]);

	/* select: sets, EBADF, remaining timeout. */
	pipe(p);
	fd_set r, wr;
	FD_ZERO(&r);
	FD_ZERO(&wr);
	FD_SET(p[0], &r);
	FD_SET(p[1], &wr);
	struct timeval tv = {0, 0};
	n = select(p[1] + 1, &r, &wr, NULL, &tv);
	CHECK("select_initial", n == 1 && !FD_ISSET(p[0], &r) && FD_ISSET(p[1], &wr), "n %d", n);
	FD_ZERO(&r);
	FD_SET(p[0], &r);
	write(p[1], "z", 1);
	tv.tv_sec = 5;
	n = select(p[0] + 1, &r, NULL, NULL, &tv);
	CHECK("select_readable", n == 1 && FD_ISSET(p[0], &r) && tv.tv_sec <= 5 && tv.tv_sec >= 4, "n %d sec %ld", n,
	      (long)tv.tv_sec);
	/* A closed descriptor inside the table is EBADF; one past the table's
	 * size (64 slots until a descriptor that high was opened) is ignored,
	 * its bit left as it was. */
	close(60);
	FD_ZERO(&r);
	FD_SET(60, &r);
	EXPECT("select_ebadf", select(61, &r, NULL, NULL, NULL) < 0 ? -errno : 0, -EBADF);
	FD_ZERO(&r);
	FD_SET(1000, &r);
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	n = select(1001, &r, NULL, NULL, &tv);
	CHECK("select_past_table_ignored", n == 0 && FD_ISSET(1000, &r), "n %d errno %d", n, errno);
	EXPECT("select_negative", select(-1, NULL, NULL, NULL, NULL) < 0 ? -errno : 0, -EINVAL);
	tv.tv_sec = 0;
	tv.tv_usec = 30000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The raw call: musl passes the kernel a copy of the timeout. */
	n = (int)syscall(SYS_select, 0, NULL, NULL, NULL, &tv);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK("select_sleep", n == 0 && ms >= 25 && tv.tv_usec == 0 && tv.tv_sec == 0, "n %d ms %ld", n, ms);
	struct timespec ts = {0, 0};
	FD_ZERO(&r);
	FD_SET(p[0], &r);
	n = pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL);
	EXPECT("pselect_readable", n, 1);

	/* ppoll with a mask that unblocks a pending signal: EINTR after the
	 * handler, and the old mask is back. */
	signal(SIGUSR1, on_usr1);
	sigset_t block, empty, now;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigemptyset(&empty);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGUSR1);
	read(p[0], &c, 1);
	struct pollfd pf = {p[0], POLLIN, 0};
	n = ppoll(&pf, 1, NULL, &empty);
	sigprocmask(SIG_BLOCK, NULL, &now);
	CHECK("ppoll_sigmask_eintr", n < 0 && errno == EINTR && sigismember(&now, SIGUSR1), "n %d errno %d", n, errno);
	EXPECT("ppoll_bad_timeout", ppoll(&pf, 1, &(struct timespec){0, 2000000000}, NULL) < 0 ? -errno : 0, -EINVAL);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	close(p[0]);
	close(p[1]);
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	basics();
	atomicity();
	packets();
	fifos(argv[1]);
	splices(argv[1]);
	readiness();
	return 0;
}
