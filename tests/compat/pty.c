/* Pseudo-terminals, each case on a fresh pair from posix_openpt
 * (O_RDWR|O_NOCTTY): opening (grantpt, unlockpt, ptsname against
 * TIOCGPTN, the slave locked until unlocked, TIOCSPTLCK/TIOCGPTLCK,
 * TIOCGPTPEER, isatty, fstat, ttyname), the slave's default termios, the
 * canonical line discipline (lines, erase, word erase, kill, EOF, EOL,
 * literal next, CR handling, FIONREAD), echo (ECHOCTL, ECHOE, ECHOKE,
 * ECHONL) and output processing (ONLCR, OCRNL, OPOST off), non-canonical
 * VMIN/VTIME, the signal characters (SIGINT, SIGQUIT, SIGTSTP, the flush
 * and NOFLSH, ISIG off), the controlling terminal and job control in a
 * session of its own (TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCGSID, SIGTTIN
 * and SIGTTOU for the background, EIO for an orphaned group, /dev/tty,
 * TIOCNOTTY, acquiring by open), window sizes and SIGWINCH, hangups from
 * either side, flushing, TIOCOUTQ, tcdrain, packet mode, poll, and the
 * SIGHUP to the foreground group when the controlling process exits.
 *
 * The program needs no terminal of its own: every session with a
 * controlling terminal is made by a child (setsid + TIOCSCTTY), and
 * every wait is a blocking read, a poll with a generous timeout, or
 * waitpid, so nothing depends on timing. */
#include "compat.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#define WAIT_MS 3000

/* Printable form of `n` bytes (or of a negative result). */
static const char *show(const char *p, long n) {
	static char bufs[4][200];
	static int k;
	char *o = bufs[k++ & 3];
	size_t j = 0;
	if (n < 0) {
		snprintf(o, 200, "(%ld %s)", n, strerror((int)-n));
		return o;
	}
	o[j++] = '"';
	for (long i = 0; i < n && j < 180; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
			o[j++] = (char)c;
		else
			j += (size_t)snprintf(o + j, 200 - j, "\\%03o", c);
	}
	o[j++] = '"';
	o[j] = 0;
	return o;
}

/* -errno or the result. */
static long res(long r) { return r < 0 ? -errno : r; }

static long put(int fd, const char *s) { return res(write(fd, s, strlen(s))); }

/* Up to `n` bytes, waiting at most `ms` for each piece: the count, or
 * -errno if the first read failed. */
static long read_n(int fd, char *buf, long n, int ms) {
	long got = 0;
	while (got < n) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, ms) <= 0)
			break;
		long k = read(fd, buf + got, (size_t)(n - got));
		if (k <= 0) {
			if (got == 0)
				return k < 0 ? -errno : 0;
			break;
		}
		got += k;
	}
	return got;
}

/* Reads exactly what `want` says (or times out) and compares. */
static void expect_bytes(const char *name, int fd, const char *want, long wn) {
	char buf[256];
	long n = read_n(fd, buf, wn, WAIT_MS);
	CHECK(name, n == wn && memcmp(buf, want, (size_t)wn) == 0, "got %s, want %s", show(buf, n), show(want, wn));
}
#define EXPECT_BYTES(name, fd, lit) expect_bytes(name, fd, lit, (long)sizeof(lit) - 1)
/* Waits for what the line discipline is known to send back (an echo):
 * the input before it has been seen. */
#define SYNC(fd, lit) read_n(fd, (char[sizeof(lit)]){0}, (long)sizeof(lit) - 1, WAIT_MS)

/* One read(2) of up to 256 bytes once readable, compared. */
static void expect_read(const char *name, int fd, const char *want, long wn) {
	char buf[256];
	struct pollfd p = {fd, POLLIN, 0};
	long n = poll(&p, 1, WAIT_MS) == 1 ? res(read(fd, buf, sizeof buf)) : -ETIMEDOUT;
	CHECK(name, n == wn && memcmp(buf, want, (size_t)wn) == 0, "got %s, want %s", show(buf, n), show(want, wn));
}
#define EXPECT_READ(name, fd, lit) expect_read(name, fd, lit, (long)sizeof(lit) - 1)

static short revents(int fd, short events, int ms) {
	struct pollfd p = {fd, events, 0};
	int r = poll(&p, 1, ms);
	return r > 0 ? p.revents : r < 0 ? -1 : 0;
}

static int new_pty(int *m, int *s) {
	*s = -1;
	*m = posix_openpt(O_RDWR | O_NOCTTY);
	if (*m < 0)
		return -1;
	if (grantpt(*m) || unlockpt(*m)) {
		close(*m);
		return -1;
	}
	*s = open(ptsname(*m), O_RDWR | O_NOCTTY);
	if (*s < 0) {
		close(*m);
		return -1;
	}
	return 0;
}
#define PTY(name, m, s)                                                        \
	int m, s;                                                              \
	if (new_pty(&m, &s)) {                                                 \
		FAIL(name, "no pty: %s", strerror(errno));                     \
		return;                                                        \
	}

static void close2(int a, int b) {
	close(a);
	close(b);
}

static int lflags(int fd, tcflag_t on, tcflag_t off) {
	struct termios t;
	if (tcgetattr(fd, &t))
		return -1;
	t.c_lflag = (t.c_lflag | on) & ~off;
	return tcsetattr(fd, TCSANOW, &t);
}

static int noncanon(int fd, int vmin, int vtime) {
	struct termios t;
	if (tcgetattr(fd, &t))
		return -1;
	t.c_lflag &= ~(tcflag_t)ICANON;
	t.c_cc[VMIN] = (cc_t)vmin;
	t.c_cc[VTIME] = (cc_t)vtime;
	return tcsetattr(fd, TCSANOW, &t);
}

static int pending(int sig) {
	sigset_t p;
	sigpending(&p);
	return sigismember(&p, sig);
}

static void block(int sig) {
	sigset_t b;
	sigemptyset(&b);
	sigaddset(&b, sig);
	sigprocmask(SIG_BLOCK, &b, NULL);
}

static void unblock(int sig) {
	sigset_t b;
	sigemptyset(&b);
	sigaddset(&b, sig);
	sigprocmask(SIG_UNBLOCK, &b, NULL);
}

/* The signal `sig` (blocked), waited for: its si_code, or -1. */
static int wait_sig(int sig, int ms) {
	sigset_t w;
	sigemptyset(&w);
	sigaddset(&w, sig);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	siginfo_t si;
	return sigtimedwait(&w, &si, &ts) == sig ? si.si_code : -1;
}

static void handle(int sig, void (*h)(int), int flags) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigaction(sig, &sa, NULL);
}

/* ---- opening ---- */

static void opening(void) {
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK("posix_openpt", m >= 0, "%s", strerror(errno));
	if (m < 0)
		return;
	unsigned ptn = 0;
	EXPECT("tiocgptn", res(ioctl(m, TIOCGPTN, &ptn)), 0);
	char want[64];
	snprintf(want, sizeof want, "/dev/pts/%u", ptn);
	const char *name = ptsname(m);
	CHECK("ptsname_is_ptn", name && strcmp(name, want) == 0, "%s, TIOCGPTN %u", name ? name : "(null)", ptn);
	char path[64];
	snprintf(path, sizeof path, "%s", want);
	EXPECT("grantpt", grantpt(m), 0);
	int lk = -1;
	EXPECT("locked_at_first", res(ioctl(m, TIOCGPTLCK, &lk)) == 0 ? lk : -99, 1);
	EXPECT("open_locked_eio", res(open(path, O_RDWR | O_NOCTTY)), -EIO);
	EXPECT("tiocgptpeer_locked_eio", res(ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY)), -EIO);
	EXPECT("unlockpt", unlockpt(m), 0);
	int s = open(path, O_RDWR | O_NOCTTY);
	CHECK("open_unlocked", s >= 0, "%s", strerror(errno));
	int on = 1, off = 0;
	ioctl(m, TIOCSPTLCK, &on);
	lk = -1;
	ioctl(m, TIOCGPTLCK, &lk);
	CHECK("relock_eio", lk == 1 && res(open(path, O_RDWR | O_NOCTTY)) == -EIO, "lock %d", lk);
	ioctl(m, TIOCSPTLCK, &off);
	int s2 = open(path, O_RDWR | O_NOCTTY);
	CHECK("unlock_again_opens", s2 >= 0, "%s", strerror(errno));
	close(s2);
	int p = (int)ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	struct stat a, b;
	CHECK("tiocgptpeer", p >= 0 && fstat(p, &a) == 0 && fstat(s, &b) == 0 && a.st_rdev == b.st_rdev,
	      "%s", p < 0 ? strerror(errno) : "another device");
	close(p);
	CHECK("isatty_master", isatty(m) == 1, "0");
	CHECK("isatty_slave", isatty(s) == 1, "0");
	int pp[2];
	if (pipe(pp) == 0) {
		errno = 0;
		int t = isatty(pp[0]);
		CHECK("isatty_pipe_enotty", t == 0 && errno == ENOTTY, "%d %s", t, strerror(errno));
		close2(pp[0], pp[1]);
	}
	fstat(s, &b);
	CHECK("slave_rdev", S_ISCHR(b.st_mode) && b.st_rdev == makedev(136 + ptn / 256, ptn % 256),
	      "mode %o rdev %u:%u", b.st_mode, major(b.st_rdev), minor(b.st_rdev));
	fstat(m, &a);
	CHECK("master_rdev", S_ISCHR(a.st_mode) && a.st_rdev == makedev(5, 2), "mode %o rdev %u:%u", a.st_mode,
	      major(a.st_rdev), minor(a.st_rdev));
	const char *tn = ttyname(s);
	CHECK("ttyname_slave", tn && strcmp(tn, path) == 0, "%s", tn ? tn : strerror(errno));
	EXPECT("tiocgptn_slave_enotty", res(ioctl(s, TIOCGPTN, &ptn)), -ENOTTY);
	close2(m, s);
}

/* ---- defaults ---- */

static void defaults(void) {
	PTY("defaults", m, s);
	struct termios t;
	memset(&t, 0, sizeof t);
	tcgetattr(s, &t);
	EXPECT("default_iflag", t.c_iflag, ICRNL | IXON);
	EXPECT("default_oflag", t.c_oflag, OPOST | ONLCR);
	EXPECT("default_cflag", t.c_cflag, B38400 | CS8 | CREAD);
	EXPECT("default_lflag", t.c_lflag, ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN);
	static const struct {
		int i, v;
	} cc[] = {{VINTR, 3},      {VQUIT, 034},   {VERASE, 0177}, {VKILL, 025},   {VEOF, 4},
		  {VTIME, 0},      {VMIN, 1},      {VSTART, 021},  {VSTOP, 023},   {VSUSP, 032},
		  {VEOL, 0},       {VREPRINT, 022}, {VDISCARD, 017}, {VWERASE, 027}, {VLNEXT, 026},
		  {VEOL2, 0}};
	char bad[200] = "";
	for (unsigned i = 0; i < sizeof cc / sizeof cc[0]; i++)
		if (t.c_cc[cc[i].i] != cc[i].v)
			snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " cc[%d]=%#o want %#o", cc[i].i,
				 t.c_cc[cc[i].i], cc[i].v);
	CHECK("default_cc", bad[0] == 0, "%s", bad);
	EXPECT("default_speed", cfgetospeed(&t), B38400);
	/* The master's termios calls reach the slave's. */
	lflags(s, 0, ECHO);
	struct termios mt;
	tcgetattr(m, &mt);
	CHECK("master_tcgetattr_is_slave", !(mt.c_lflag & ECHO) && (mt.c_lflag & ICANON), "lflag %#o",
	      mt.c_lflag);
	lflags(m, ECHO, 0);
	tcgetattr(s, &t);
	CHECK("master_tcsetattr_is_slave", t.c_lflag & ECHO, "lflag %#o", t.c_lflag);
	close2(m, s);
}

/* ---- canonical input ---- */

static void canon_line(const char *name, const char *in, const char *want, long wn) {
	PTY(name, m, s);
	lflags(s, 0, ECHO);
	put(m, in);
	expect_read(name, s, want, wn);
	close2(m, s);
}
#define CANON(name, in, lit) canon_line(name, in, lit, (long)sizeof(lit) - 1)

static void canonical(void) {
	CANON("canon_line", "abc\n", "abc\n");
	CANON("canon_one_line_per_read", "ab\ncd\n", "ab\n");
	CANON("canon_erase", "abx\177c\n", "abc\n");
	CANON("canon_erase_past_start", "\177\177a\n", "a\n");
	CANON("canon_kill", "xyz\025abc\n", "abc\n");
	CANON("canon_werase", "foo bar\027baz\n", "foo baz\n");
	CANON("canon_eof_after_chars", "ab\004cd\n", "ab");
	CANON("canon_icrnl", "ab\r", "ab\n");
	CANON("canon_lnext", "a\026\177\n", "a\177\n");
	{
		PTY("canon_eof_empty", m, s);
		lflags(s, 0, ECHO);
		put(m, "\004x\n");
		EXPECT("canon_eof_empty", res(read(s, (char[8]){0}, 8)), 0);
		EXPECT_READ("canon_after_eof", s, "x\n");
		close2(m, s);
	}
	{
		PTY("canon_short_read", m, s);
		lflags(s, 0, ECHO);
		put(m, "abcdef\n");
		char b[3];
		long n = res(read(s, b, 3));
		CHECK("canon_short_read", n == 3 && memcmp(b, "abc", 3) == 0, "%s", show(b, n));
		EXPECT_READ("canon_rest_of_line", s, "def\n");
		close2(m, s);
	}
	{
		PTY("canon_igncr", m, s);
		struct termios t;
		tcgetattr(s, &t);
		t.c_iflag |= IGNCR;
		t.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(s, TCSANOW, &t);
		put(m, "a\rb\n");
		EXPECT_READ("canon_igncr", s, "ab\n");
		close2(m, s);
	}
	{
		PTY("canon_veol", m, s);
		struct termios t;
		tcgetattr(s, &t);
		t.c_cc[VEOL] = '!';
		t.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(s, TCSANOW, &t);
		put(m, "ab!cd\n");
		EXPECT_READ("canon_veol", s, "ab!");
		close2(m, s);
	}
	{
		/* A partial line is not readable; the echo says it was seen. */
		PTY("canon_partial_not_readable", m, s);
		put(m, "ab");
		SYNC(m, "ab");
		EXPECT("canon_partial_not_readable", revents(s, POLLIN, 0), 0);
		char b[8];
		int fl = fcntl(s, F_GETFL);
		fcntl(s, F_SETFL, fl | O_NONBLOCK);
		EXPECT("canon_nonblock_eagain", res(read(s, b, 8)), -EAGAIN);
		fcntl(s, F_SETFL, fl);
		int q = -1;
		ioctl(s, FIONREAD, &q);
		EXPECT("canon_fionread_partial", q, 0);
		put(m, "\ncd");
		SYNC(m, "\r\ncd");
		EXPECT("canon_readable_after_newline", revents(s, POLLIN, WAIT_MS), POLLIN);
		q = -1;
		ioctl(s, FIONREAD, &q);
		EXPECT("canon_fionread_line", q, 3);
		EXPECT_READ("canon_line_without_rest", s, "ab\n");
		close2(m, s);
	}
}

/* ---- echo and output processing ---- */

static void echo_case(const char *name, tcflag_t on, tcflag_t off, const char *in, const char *want, long wn) {
	PTY(name, m, s);
	lflags(s, on, off);
	put(m, in);
	expect_bytes(name, m, want, wn);
	close2(m, s);
}
#define ECHO_CASE(name, on, off, in, lit) echo_case(name, on, off, in, lit, (long)sizeof(lit) - 1)

static void output_case(const char *name, tcflag_t on, tcflag_t off, const char *out, const char *want, long wn) {
	PTY(name, m, s);
	struct termios t;
	tcgetattr(s, &t);
	t.c_oflag = (t.c_oflag | on) & ~off;
	tcsetattr(s, TCSANOW, &t);
	put(s, out);
	expect_bytes(name, m, want, wn);
	close2(m, s);
}
#define OUTPUT_CASE(name, on, off, out, lit) output_case(name, on, off, out, lit, (long)sizeof(lit) - 1)

static void echoing(void) {
	ECHO_CASE("echo_input", 0, 0, "hi\n", "hi\r\n");
	ECHO_CASE("echoctl", 0, ISIG, "\003\n", "^C\r\n");
	ECHO_CASE("echoe", 0, 0, "ab\177", "ab\b \b");
	ECHO_CASE("echoke_kill", 0, 0, "ab\025", "ab\b \b\b \b");
	ECHO_CASE("echonl", ECHONL, ECHO, "a\nb\n", "\r\n\r\n");
	{
		PTY("echo_off", m, s);
		lflags(s, 0, ECHO);
		put(m, "q\n");
		SYNC(s, "q\n");
		EXPECT("echo_off", revents(m, POLLIN, 0), 0);
		close2(m, s);
	}
	OUTPUT_CASE("onlcr", 0, 0, "x\ny\n", "x\r\ny\r\n");
	OUTPUT_CASE("opost_off", 0, OPOST, "x\n", "x\n");
	OUTPUT_CASE("ocrnl", OCRNL, ONLCR, "a\rb", "a\nb");
}

/* ---- non-canonical input ---- */

static void noncanonical(void) {
	{
		PTY("raw_vmin0_empty", m, s);
		noncanon(s, 0, 0);
		EXPECT("raw_vmin0_empty", res(read(s, (char[8]){0}, 8)), 0);
		put(m, "xy");
		SYNC(m, "xy");
		EXPECT_READ("raw_vmin0_data", s, "xy");
		close2(m, s);
	}
	{
		PTY("raw_vmin2", m, s);
		noncanon(s, 2, 0);
		put(m, "a");
		SYNC(m, "a");
		EXPECT("raw_vmin2_one_not_readable", revents(s, POLLIN, 0), 0);
		int q = -1;
		ioctl(s, FIONREAD, &q);
		EXPECT("raw_fionread", q, 1);
		put(m, "bc");
		SYNC(m, "bc");
		EXPECT("raw_vmin2_readable", revents(s, POLLIN, 0), POLLIN);
		EXPECT_READ("raw_vmin2_read", s, "abc");
		close2(m, s);
	}
	{
		PTY("raw_vtime_timeout", m, s);
		noncanon(s, 0, 1);
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		long n = res(read(s, (char[8]){0}, 8));
		clock_gettime(CLOCK_MONOTONIC, &b);
		long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
		CHECK("raw_vtime_timeout", n == 0 && ms >= 90 && ms < 2000, "read %ld after %ld ms", n, ms);
		close2(m, s);
	}
	{
		PTY("raw_no_icrnl_mapping", m, s);
		noncanon(s, 1, 0);
		lflags(s, 0, ECHO);
		struct termios t;
		tcgetattr(s, &t);
		t.c_iflag &= ~(tcflag_t)ICRNL;
		tcsetattr(s, TCSANOW, &t);
		put(m, "\r\177\004");
		EXPECT_BYTES("raw_bytes_as_is", s, "\r\177\004");
		close2(m, s);
	}
}

/* ---- the signal characters, without a session ---- */

static void isig_no_session(void) {
	{
		PTY("isig_flushes_line", m, s);
		lflags(s, 0, ECHO);
		put(m, "ab\003cd\n");
		EXPECT_READ("isig_flushes_line", s, "cd\n");
		close2(m, s);
	}
	{
		PTY("noflsh_keeps_line", m, s);
		lflags(s, NOFLSH, ECHO);
		put(m, "ab\003cd\n");
		EXPECT_READ("noflsh_keeps_line", s, "abcd\n");
		close2(m, s);
	}
	{
		PTY("tiocgpgrp_no_session", m, s);
		pid_t pg = -1;
		EXPECT("tiocgpgrp_not_ctty_enotty", res(ioctl(s, TIOCGPGRP, &pg)), -ENOTTY);
		EXPECT("tiocgpgrp_master_none", res(ioctl(m, TIOCGPGRP, &pg)) == 0 ? pg : -99, 0);
		EXPECT("tiocgsid_no_session_enotty", res(ioctl(m, TIOCGSID, &pg)), -ENOTTY);
		close2(m, s);
	}
}

/* ---- a session with the slave as its controlling terminal ---- */

static int sync_pipe[2], go_pipe[2];

/* A child of the session leader (in a process group of its own unless
 * `same`), running fn with a clean signal state. */
static pid_t member(int s, int (*fn)(int), int same) {
	pid_t c = fork();
	if (c == 0) {
		alarm(10);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int sigs[] = {SIGTTIN, SIGTTOU, SIGTSTP, SIGHUP, SIGINT, SIGQUIT, SIGWINCH};
		for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
			signal(sigs[i], SIG_DFL);
		if (!same)
			setpgid(0, 0);
		_exit(fn(s));
	}
	if (!same)
		setpgid(c, c);
	return c;
}

static void expect_stop(const char *name, int s, int (*fn)(int), int sig) {
	pid_t c = member(s, fn, 0);
	int st = 0;
	pid_t w = waitpid(c, &st, WUNTRACED);
	CHECK(name, w == c && WIFSTOPPED(st) && WSTOPSIG(st) == sig, "status %#x", st);
	if (w == c && WIFSTOPPED(st)) {
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
	}
}

static void expect_exit(const char *name, int s, int (*fn)(int)) {
	pid_t c = member(s, fn, 0);
	int st = 0;
	pid_t w = waitpid(c, &st, WUNTRACED);
	CHECK(name, w == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	if (w == c && WIFSTOPPED(st)) {
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
	}
}

/* 0 when `r` is `want`, else a code that shows what it was. */
static int code(long r, long want) { return r == want ? 0 : r < 0 ? (int)(100 - r) : 99; }

static int bg_read(int s) { return code(res(read(s, (char[4]){0}, 4)), -999); }
static int bg_read_ttin_ignored(int s) {
	signal(SIGTTIN, SIG_IGN);
	return code(res(read(s, (char[4]){0}, 4)), -EIO);
}
static int bg_read_ttin_blocked(int s) {
	block(SIGTTIN);
	return code(res(read(s, (char[4]){0}, 4)), -EIO);
}
static volatile sig_atomic_t caught;
static void on_caught(int sig) { caught = sig; }
static int bg_read_ttin_handler(int s) {
	handle(SIGTTIN, on_caught, 0);
	long r = res(read(s, (char[4]){0}, 4));
	return r == -EINTR && caught == SIGTTIN ? 0 : code(r, -EINTR) + 1;
}
static int bg_write(int s) { return code(put(s, "w"), 1); }
static int bg_write_ttou_ignored(int s) {
	signal(SIGTTOU, SIG_IGN);
	return code(put(s, "w"), 1);
}
static int bg_tcgetattr(int s) {
	struct termios t;
	return code(res(tcgetattr(s, &t)), 0);
}
static int bg_tcsetattr(int s) {
	struct termios t;
	tcgetattr(s, &t);
	return code(res(tcsetattr(s, TCSANOW, &t)), 0);
}
static int bg_tcsetattr_ttou_ignored(int s) {
	signal(SIGTTOU, SIG_IGN);
	return bg_tcsetattr(s);
}
static int fg_wait(int s) {
	(void)s;
	if (write(sync_pipe[1], "r", 1) != 1)
		return 98;
	for (;;)
		pause();
}
static int nonleader_sctty(int s) {
	(void)s;
	int m2, s2;
	if (new_pty(&m2, &s2))
		return 97;
	int r = code(res(ioctl(s2, TIOCSCTTY, 0)), -EPERM);
	close2(m2, s2);
	return r;
}

static int set_fg(int s, pid_t pg) {
	block(SIGTTOU);
	int r = (int)res(tcsetpgrp(s, pg));
	unblock(SIGTTOU);
	return r;
}

/* In a process of another session (no controlling terminal). */
static void other_session(int m, int s) {
	pid_t leader = getpid();
	pid_t c = fork();
	if (c == 0) {
		alarm(10);
		setsid();
		EXPECT("other_session_tiocsctty_eperm", res(ioctl(s, TIOCSCTTY, 0)), -EPERM);
		pid_t pg = -1;
		EXPECT("other_session_tiocgpgrp_slave_enotty", res(ioctl(s, TIOCGPGRP, &pg)), -ENOTTY);
		pg = -1;
		ioctl(m, TIOCGPGRP, &pg);
		EXPECT("other_session_tiocgpgrp_master", pg, leader);
		pg = -1;
		ioctl(m, TIOCGSID, &pg);
		EXPECT("other_session_tiocgsid_master", pg, leader);
		EXPECT("other_session_dev_tty_enxio", open_close("/dev/tty", O_RDWR), -ENXIO);
		EXPECT("other_session_tiocnotty_enotty", res(ioctl(s, TIOCNOTTY)), -ENOTTY);
		char go;
		if (write(sync_pipe[1], "r", 1) != 1 || read(go_pipe[0], &go, 1) != 1)
			_exit(1);
		_exit(0);
	}
	/* Its process group is in another session. */
	char r;
	if (read(sync_pipe[0], &r, 1) != 1)
		FAIL("tiocspgrp_other_session_eperm", "no reply");
	EXPECT("tiocspgrp_other_session_eperm", set_fg(s, c), -EPERM);
	if (write(go_pipe[1], "g", 1) != 1)
		FAIL("tiocspgrp_other_session_eperm", "go");
	int st;
	waitpid(c, &st, 0);
}

static void leader(int m, int s) {
	EXPECT("tiocsctty", res(ioctl(s, TIOCSCTTY, 0)), 0);
	lflags(s, 0, ECHO);
	pid_t pg = -1;
	ioctl(s, TIOCGPGRP, &pg);
	EXPECT("tiocgpgrp", pg, getpgrp());
	pg = -1;
	ioctl(s, TIOCGSID, &pg);
	EXPECT("tiocgsid", pg, getsid(0));
	EXPECT("tiocsctty_again", res(ioctl(s, TIOCSCTTY, 0)), 0);
	{
		int m2, s2;
		if (new_pty(&m2, &s2) == 0) {
			EXPECT("tiocsctty_second_tty_eperm", res(ioctl(s2, TIOCSCTTY, 0)), -EPERM);
			close2(m2, s2);
		}
	}

	/* /dev/tty */
	int t = open("/dev/tty", O_RDWR);
	CHECK("dev_tty_open", t >= 0, "%s", strerror(errno));
	put(t, "T");
	EXPECT_BYTES("dev_tty_write_reaches_master", m, "T");
	pg = -1;
	ioctl(t, TIOCGPGRP, &pg);
	EXPECT("dev_tty_tiocgpgrp", pg, getpid());
	close(t);

	other_session(m, s);
	expect_exit("tiocsctty_nonleader_eperm", s, nonleader_sctty);

	/* The signal characters reach the foreground group. */
	block(SIGINT);
	put(m, "\003");
	EXPECT("isig_sigint", wait_sig(SIGINT, WAIT_MS), SI_KERNEL);
	block(SIGQUIT);
	put(m, "\034");
	EXPECT("isig_sigquit", wait_sig(SIGQUIT, WAIT_MS), SI_KERNEL);
	lflags(s, 0, ISIG);
	put(m, "\003\n");
	EXPECT_READ("isig_off_data", s, "\003\n");
	CHECK("isig_off_no_signal", !pending(SIGINT), "SIGINT pending");
	lflags(s, ISIG, 0);

	/* Window size: SIGWINCH to the foreground group on a change only. */
	block(SIGWINCH);
	struct winsize ws = {30, 100, 0, 0}, got;
	EXPECT("tiocswinsz", res(ioctl(m, TIOCSWINSZ, &ws)), 0);
	EXPECT("sigwinch_on_change", wait_sig(SIGWINCH, 0), SI_KERNEL);
	memset(&got, 0, sizeof got);
	ioctl(s, TIOCGWINSZ, &got);
	CHECK("winsize_seen_by_slave", got.ws_row == 30 && got.ws_col == 100, "%dx%d", got.ws_row, got.ws_col);
	ioctl(m, TIOCSWINSZ, &ws);
	CHECK("winsize_same_no_sigwinch", !pending(SIGWINCH), "SIGWINCH pending");
	ws.ws_xpixel = 7;
	ioctl(s, TIOCSWINSZ, &ws);
	EXPECT("sigwinch_on_slave_change", wait_sig(SIGWINCH, 0), SI_KERNEL);

	/* Background process groups. */
	expect_stop("bg_read_sigttin", s, bg_read, SIGTTIN);
	expect_exit("bg_read_ttin_ignored_eio", s, bg_read_ttin_ignored);
	expect_exit("bg_read_ttin_blocked_eio", s, bg_read_ttin_blocked);
	expect_exit("bg_read_ttin_handler_eintr", s, bg_read_ttin_handler);
	expect_exit("bg_write_no_tostop", s, bg_write);
	EXPECT_BYTES("bg_write_reaches_master", m, "w");
	lflags(s, TOSTOP, 0);
	expect_stop("bg_write_tostop_sigttou", s, bg_write, SIGTTOU);
	expect_exit("bg_write_tostop_ttou_ignored", s, bg_write_ttou_ignored);
	EXPECT_BYTES("bg_write_tostop_ignored_reaches_master", m, "w");
	lflags(s, 0, TOSTOP);
	expect_exit("bg_tcgetattr", s, bg_tcgetattr);
	expect_stop("bg_tcsetattr_sigttou", s, bg_tcsetattr, SIGTTOU);
	expect_exit("bg_tcsetattr_ttou_ignored", s, bg_tcsetattr_ttou_ignored);

	/* Another foreground group: ^Z stops it; this (orphaned) group is
	 * then in the background. */
	pid_t g = member(s, fg_wait, 0);
	char r;
	if (read(sync_pipe[0], &r, 1) != 1)
		FAIL("tiocspgrp", "no member");
	EXPECT("tiocspgrp", set_fg(s, g), 0);
	EXPECT("tcgetpgrp_after_set", tcgetpgrp(s), g);
	EXPECT("tiocspgrp_negative_einval", set_fg(s, -1), -EINVAL);
	EXPECT("bg_read_orphaned_eio", res(read(s, (char[4]){0}, 4)), -EIO);
	/* TIOCSPGRP turns tty_check_change's EIO into ENOTTY. */
	EXPECT("tcsetpgrp_bg_orphaned_enotty", res(tcsetpgrp(s, getpgrp())), -ENOTTY);
	put(m, "\032");
	int st = 0;
	waitpid(g, &st, WUNTRACED);
	CHECK("isig_sigtstp_stops", WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP, "status %#x", st);
	kill(g, SIGKILL);
	waitpid(g, &st, 0);
	EXPECT("tcsetpgrp_bg_ttou_blocked", set_fg(s, getpgrp()), 0);
	EXPECT("tcgetpgrp_back", tcgetpgrp(s), getpid());
}

/* TIOCNOTTY: by a member (it alone loses the terminal), then by the
 * leader (the foreground group gets SIGHUP and SIGCONT, the session
 * loses it). */
static int member_notty(int s) {
	if (ioctl(s, TIOCNOTTY))
		return 90;
	return code(open_close("/dev/tty", O_RDWR), -ENXIO);
}
static int hup_cont(int s) {
	(void)s;
	block(SIGHUP);
	block(SIGCONT);
	if (write(sync_pipe[1], "r", 1) != 1)
		return 98;
	char rep[2];
	/* Sent on behalf of the leader (si_code SI_USER), unlike the SIGHUP
	 * of its exit. */
	rep[0] = wait_sig(SIGHUP, WAIT_MS) == SI_USER ? 'H' : 'h';
	rep[1] = wait_sig(SIGCONT, WAIT_MS) == SI_USER ? 'C' : 'c';
	if (write(sync_pipe[1], rep, 2) != 2)
		return 98;
	char go;
	if (read(go_pipe[0], &go, 1) != 1)
		return 97;
	return code(open_close("/dev/tty", O_RDWR), -ENXIO);
}

static void notty(int m, int s) {
	if (ioctl(s, TIOCSCTTY, 0)) {
		FAIL("tiocnotty_member", "TIOCSCTTY: %s", strerror(errno));
		return;
	}
	pid_t c = member(s, member_notty, 1);
	int st = 0;
	waitpid(c, &st, 0);
	CHECK("tiocnotty_member", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	EXPECT("tiocnotty_member_leader_keeps", open_close("/dev/tty", O_RDWR), 0);
	pid_t g = member(s, hup_cont, 1);
	char r[2] = {0, 0};
	if (read(sync_pipe[0], r, 1) != 1)
		FAIL("tiocnotty_leader", "no member");
	signal(SIGHUP, SIG_IGN);
	EXPECT("tiocnotty_leader", res(ioctl(s, TIOCNOTTY)), 0);
	long n = read_n(sync_pipe[0], r, 2, WAIT_MS);
	CHECK("tiocnotty_fg_sighup_sigcont", n == 2 && r[0] == 'H' && r[1] == 'C', "%s", show(r, n));
	EXPECT("tiocnotty_leader_dev_tty_enxio", open_close("/dev/tty", O_RDWR), -ENXIO);
	pid_t pg = -1;
	EXPECT("tiocnotty_session_cleared", res(ioctl(m, TIOCGSID, &pg)), -ENOTTY);
	EXPECT("tiocnotty_again_enotty", res(ioctl(s, TIOCNOTTY)), -ENOTTY);
	if (write(go_pipe[1], "g", 1) != 1)
		FAIL("tiocnotty_member_dev_tty_enxio", "go");
	waitpid(g, &st, 0);
	CHECK("tiocnotty_member_dev_tty_enxio", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

/* Opening the slave without O_NOCTTY makes it a session leader's
 * controlling terminal; the master never does. */
static void acquire(int m, int s) {
	(void)s;
	EXPECT("dev_tty_no_ctty_enxio", open_close("/dev/tty", O_RDWR), -ENXIO);
	int x = open("/dev/ptmx", O_RDWR);
	CHECK("open_ptmx_no_ctty", x >= 0 && open_close("/dev/tty", O_RDWR) == -ENXIO, "%s",
	      x < 0 ? strerror(errno) : "/dev/tty opened");
	close(x);
	const char *name = ptsname(m);
	x = open(name, O_RDWR | O_NOCTTY);
	CHECK("open_noctty_no_ctty", x >= 0 && open_close("/dev/tty", O_RDWR) == -ENXIO, "%s",
	      x < 0 ? strerror(errno) : "/dev/tty opened");
	close(x);
	x = open(name, O_RDWR);
	pid_t sid = -1;
	ioctl(x, TIOCGSID, &sid);
	CHECK("open_acquires_ctty", x >= 0 && sid == getpid() && open_close("/dev/tty", O_RDWR) == 0, "sid %d",
	      sid);
	close(x);
}

static void in_session(const char *name, void (*fn)(int, int)) {
	PTY(name, m, s);
	if (pipe(sync_pipe) || pipe(go_pipe)) {
		FAIL(name, "pipe");
		return;
	}
	pid_t c = fork();
	if (c == 0) {
		alarm(20);
		if (setsid() < 0)
			FAIL(name, "setsid: %s", strerror(errno));
		fn(m, s);
		_exit(0);
	}
	int st = 0;
	waitpid(c, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL(name, "session leader status %#x", st);
	close2(m, s);
	close2(sync_pipe[0], sync_pipe[1]);
	close2(go_pipe[0], go_pipe[1]);
}

/* The controlling process exits: SIGHUP to the foreground group only,
 * and the terminal belongs to no session afterwards. */
static void leader_exit(void) {
	PTY("leader_exit", m, s);
	int ready[2], rep[2], go[2];
	if (pipe(ready) || pipe(rep) || pipe(go)) {
		FAIL("leader_exit", "pipe");
		return;
	}
	pid_t l = fork();
	if (l == 0) {
		alarm(10);
		setsid();
		if (ioctl(s, TIOCSCTTY, 0))
			_exit(2);
		for (int bg = 0; bg < 2; bg++) {
			pid_t c = fork();
			if (c == 0) {
				alarm(10);
				block(SIGHUP);
				if (bg)
					setpgid(0, 0);
				if (write(ready[1], "r", 1) != 1)
					_exit(1);
				char b;
				if (bg) {
					/* Told after the leader is gone. */
					if (read(go[0], &b, 1) != 1)
						_exit(1);
					b = pending(SIGHUP) ? 'H' : 'n';
				} else {
					b = wait_sig(SIGHUP, WAIT_MS) == SI_KERNEL ? 'H' : 'n';
				}
				if (write(rep[1], &b, 1) != 1)
					_exit(1);
				if (!bg) {
					if (read(go[0], &b, 1) != 1)
						_exit(1);
					b = open_close("/dev/tty", O_RDWR) == -ENXIO ? 'x' : 'o';
					if (write(rep[1], &b, 1) != 1)
						_exit(1);
				}
				_exit(0);
			}
			if (bg)
				setpgid(c, c);
		}
		char b[2];
		if (read_n(ready[0], b, 2, WAIT_MS) != 2)
			_exit(3);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	int st = 0;
	waitpid(l, &st, 0);
	CHECK("leader_exit_setup", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	char b = 0;
	long n = read_n(rep[0], &b, 1, WAIT_MS);
	CHECK("leader_exit_fg_sighup", n == 1 && b == 'H', "%s", show(&b, n));
	pid_t sid = -1;
	EXPECT("leader_exit_session_cleared", res(ioctl(m, TIOCGSID, &sid)), -ENOTTY);
	/* One byte for each member: the foreground one opens /dev/tty, the
	 * background one looks for a SIGHUP. */
	if (write(go[1], "gg", 2) != 2)
		FAIL("leader_exit_fg_dev_tty_enxio", "go");
	char r[2] = {0, 0};
	n = read_n(rep[0], r, 2, WAIT_MS);
	/* Their order is theirs. */
	CHECK("leader_exit_fg_dev_tty_enxio", n == 2 && memchr(r, 'x', 2), "%s", show(r, n));
	CHECK("leader_exit_bg_no_sighup", n == 2 && memchr(r, 'n', 2), "%s", show(r, n));
	close2(ready[0], rep[0]);
	close2(rep[1], go[1]);
	close2(m, s);
}

/* ---- window size without a session ---- */

static void winsize(void) {
	PTY("winsize", m, s);
	struct winsize w;
	memset(&w, 0xff, sizeof w);
	ioctl(s, TIOCGWINSZ, &w);
	CHECK("winsize_default_zero", w.ws_row == 0 && w.ws_col == 0 && w.ws_xpixel == 0 && w.ws_ypixel == 0,
	      "%d %d %d %d", w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel);
	struct winsize set = {24, 80, 640, 480};
	ioctl(m, TIOCSWINSZ, &set);
	memset(&w, 0, sizeof w);
	ioctl(s, TIOCGWINSZ, &w);
	CHECK("winsize_master_to_slave", memcmp(&w, &set, sizeof w) == 0, "%d %d %d %d", w.ws_row, w.ws_col,
	      w.ws_xpixel, w.ws_ypixel);
	set.ws_row = 50;
	ioctl(s, TIOCSWINSZ, &set);
	memset(&w, 0, sizeof w);
	ioctl(m, TIOCGWINSZ, &w);
	CHECK("winsize_slave_to_master", w.ws_row == 50 && w.ws_col == 80, "%d %d", w.ws_row, w.ws_col);
	close2(m, s);
}

/* ---- hangups ---- */

static void hangup(void) {
	{
		PTY("master_close", m, s);
		lflags(s, 0, ECHO);
		put(m, "unread\n");
		revents(s, POLLIN, WAIT_MS);
		close(m);
		short r = revents(s, POLLIN | POLLOUT, 0);
		CHECK("master_close_slave_pollhup", r == (POLLIN | POLLOUT | POLLERR | POLLHUP), "revents %#x", r);
		EXPECT("master_close_slave_eof", res(read(s, (char[8]){0}, 8)), 0);
		EXPECT("master_close_slave_write_eio", put(s, "x"), -EIO);
		struct termios t;
		EXPECT("master_close_slave_tcgetattr_eio", res(tcgetattr(s, &t)), -EIO);
		close(s);
	}
	{
		int m = posix_openpt(O_RDWR | O_NOCTTY);
		grantpt(m);
		unlockpt(m);
		char name[64];
		snprintf(name, sizeof name, "%s", ptsname(m));
		close(m);
		struct stat st;
		EXPECT("master_close_slave_node_gone", res(stat(name, &st)), -ENOENT);
	}
	{
		PTY("slave_close", m, s);
		put(s, "bye");
		close(s);
		EXPECT_BYTES("slave_close_master_drains", m, "bye");
		EXPECT("slave_close_master_eio", res(read(m, (char[8]){0}, 8)), -EIO);
		short r = revents(m, POLLIN | POLLOUT, 0);
		CHECK("slave_close_master_pollhup", r == (POLLOUT | POLLHUP), "revents %#x", r);
		int s2 = open(ptsname(m), O_RDWR | O_NOCTTY);
		CHECK("slave_reopen", s2 >= 0, "%s", strerror(errno));
		r = revents(m, POLLIN | POLLOUT, 0);
		CHECK("slave_reopen_no_pollhup", r == POLLOUT, "revents %#x", r);
		put(s2, "again");
		EXPECT_BYTES("slave_reopen_data", m, "again");
		close2(m, s2);
	}
}

/* ---- queues, flushing, packet mode, poll ---- */

static void queues(void) {
	{
		PTY("tciflush", m, s);
		put(m, "abc\n");
		SYNC(m, "abc\r\n");
		EXPECT("tciflush", res(tcflush(s, TCIFLUSH)), 0);
		int q = -1;
		ioctl(s, FIONREAD, &q);
		EXPECT("tciflush_empty", q, 0);
		EXPECT("tciflush_not_readable", revents(s, POLLIN, 0), 0);
		put(m, "z\n");
		SYNC(m, "z\r\n");
		EXPECT_READ("tciflush_then_new_line", s, "z\n");
		close2(m, s);
	}
	{
		PTY("tcdrain", m, s);
		put(s, "out");
		EXPECT("tcdrain", res(tcdrain(s)), 0);
		EXPECT("tcsbrk_1", res(ioctl(s, TCSBRK, 1)), 0);
		int q = -1;
		ioctl(s, TIOCOUTQ, &q);
		EXPECT("tiocoutq_slave", q, 0);
		q = -1;
		revents(m, POLLIN, WAIT_MS);
		ioctl(m, FIONREAD, &q);
		EXPECT("fionread_master", q, 3);
		EXPECT_BYTES("tcdrain_data", m, "out");
		close2(m, s);
	}
	{
		PTY("pkt", m, s);
		int on = 1, got = -1;
		EXPECT("tiocpkt", res(ioctl(m, TIOCPKT, &on)), 0);
		ioctl(m, TIOCGPKT, &got);
		EXPECT("tiocgpkt", got, 1);
		put(s, "p");
		EXPECT_READ("pkt_data_prefix", m, "\0p");
		close2(m, s);
	}
	{
		PTY("poll", m, s);
		EXPECT("poll_master_writable", revents(m, POLLIN | POLLOUT, 0), POLLOUT);
		EXPECT("poll_slave_writable", revents(s, POLLIN | POLLOUT, 0), POLLOUT);
		put(s, "x");
		EXPECT("poll_master_readable", revents(m, POLLIN, WAIT_MS), POLLIN);
		close2(m, s);
	}
}

int main(void) {
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	opening();
	defaults();
	canonical();
	echoing();
	noncanonical();
	isig_no_session();
	winsize();
	in_session("leader", leader);
	in_session("notty", notty);
	in_session("acquire", acquire);
	leader_exit();
	hangup();
	queues();
	return 0;
}
