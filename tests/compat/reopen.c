/* Magic links and unnamed files: opening /proc/self/fd/N of a pipe (both
 * ends, data shared, the end counts), of a deleted file (its data, a new
 * offset), /dev/stdin on a pipe, /proc/self/exe and /proc/self/cwd
 * followed to the file itself; O_TMPFILE on /dev/shm (a tmpfs natively
 * and in the sandbox): its identity, flags, /proc link, linkat through
 * /proc/self/fd and AT_EMPTY_PATH, O_EXCL, argument errors. */
#include "compat.h"
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

static char fdpath[64];
static const char *fdp(int fd) {
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
	return fdpath;
}

static void pipes(void) {
	int p[2];
	if (pipe(p)) {
		FAIL("pipe", "%s", strerror(errno));
		return;
	}
	int w2 = open(fdp(p[1]), O_WRONLY);
	CHECK("pipe_reopen_write", w2 >= 0, "%s", strerror(errno));
	int r2 = open(fdp(p[0]), O_RDONLY);
	CHECK("pipe_reopen_read", r2 >= 0, "%s", strerror(errno));
	EXPECT("pipe_write_new_end", write(w2, "abc", 3), 3);
	char b[8] = {0};
	EXPECT("pipe_read_old_end", read(p[0], b, 3), 3);
	CHECK("pipe_data", memcmp(b, "abc", 3) == 0, "%.3s", b);
	struct stat a, c;
	fstat(p[0], &a);
	fstat(r2, &c);
	CHECK("pipe_same_inode", a.st_ino == c.st_ino && S_ISFIFO(c.st_mode), "ino %lu %lu", (unsigned long)a.st_ino,
	      (unsigned long)c.st_ino);
	/* Every write end must close before the reader sees end of file. */
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	EXPECT("pipe_write_end_still_open", read(p[0], b, 1) < 0 ? -errno : 0, -EAGAIN);
	close(w2);
	EXPECT("pipe_eof_after_both", read(p[0], b, 1), 0);
	EXPECT("pipe_rdwr_einval_or_ok", open(fdp(p[0]), O_RDWR) >= 0, 1);
	close(p[0]);
	close(r2);
	/* A shell's process substitution. */
	if (pipe(p))
		return;
	pid_t c2 = fork();
	if (c2 == 0) {
		close(p[0]);
		if (write(p[1], "sub\n", 4) != 4)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	char path[64];
	snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
	int f = open(path, O_RDONLY);
	memset(b, 0, sizeof b);
	CHECK("dev_fd_pipe", f >= 0 && read(f, b, 4) == 4 && memcmp(b, "sub\n", 4) == 0, "%s",
	      f < 0 ? strerror(errno) : b);
	waitpid(c2, NULL, 0);
	close(f);
	close(p[0]);
}

static void stdin_pipe(void) {
	int p[2];
	if (pipe(p))
		return;
	pid_t c = fork();
	if (c == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		int f = open("/dev/stdin", O_RDONLY);
		char b[8] = {0};
		_exit(f >= 0 && read(f, b, 5) == 5 && memcmp(b, "input", 5) == 0 ? 0 : 1);
	}
	close(p[0]);
	if (write(p[1], "input", 5) != 5)
		FAIL("dev_stdin_pipe", "write");
	close(p[1]);
	int st = 0;
	waitpid(c, &st, 0);
	CHECK("dev_stdin_pipe", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

static void deleted(void) {
	char name[64];
	snprintf(name, sizeof name, "/dev/shm/reopen.%d", (int)getpid());
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		FAIL("deleted_setup", "%s", strerror(errno));
		return;
	}
	EXPECT("deleted_write", write(fd, "kept", 4), 4);
	unlink(name);
	int f = open(fdp(fd), O_RDONLY);
	CHECK("deleted_reopen", f >= 0, "%s", strerror(errno));
	char b[8] = {0};
	EXPECT("deleted_new_offset", read(f, b, 4), 4);
	CHECK("deleted_data", memcmp(b, "kept", 4) == 0, "%.4s", b);
	EXPECT("deleted_old_offset", lseek(fd, 0, SEEK_CUR), 4);
	struct stat a, c;
	fstat(fd, &a);
	fstat(f, &c);
	CHECK("deleted_same_inode", a.st_ino == c.st_ino && c.st_nlink == 0, "ino %lu %lu nlink %lu",
	      (unsigned long)a.st_ino, (unsigned long)c.st_ino, (unsigned long)c.st_nlink);
	close(f);
	close(fd);
}

static void links(void) {
	struct stat a, c;
	int f = open("/proc/self/exe", O_RDONLY);
	CHECK("exe_open", f >= 0 && fstat(f, &a) == 0 && stat("/proc/self/exe", &c) == 0 && a.st_ino == c.st_ino,
	      "%s", strerror(errno));
	if (f >= 0)
		close(f);
	char cwd[256];
	if (!getcwd(cwd, sizeof cwd))
		return;
	CHECK("cwd_stat", stat("/proc/self/cwd", &a) == 0 && stat(cwd, &c) == 0 && a.st_ino == c.st_ino &&
				  S_ISDIR(a.st_mode),
	      "%s", strerror(errno));
	int s[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0) {
		EXPECT("socket_reopen_enxio", open(fdp(s[0]), O_RDWR) < 0 ? -errno : 0, -ENXIO);
		close(s[0]);
		close(s[1]);
	}
}

static void tmpfile_cases(void) {
	const char *d = "/dev/shm";
	int fd = open(d, O_TMPFILE | O_RDWR, 0640);
	if (fd < 0) {
		FAIL("tmpfile_open", "%s", strerror(errno));
		return;
	}
	OK("tmpfile_open");
	EXPECT("tmpfile_getfl", fcntl(fd, F_GETFL), O_TMPFILE | O_RDWR | 0100000);
	struct stat st;
	fstat(fd, &st);
	CHECK("tmpfile_stat", S_ISREG(st.st_mode) && (st.st_mode & 07777) == (0640 & ~umask(022)) && st.st_nlink == 0,
	      "mode %o nlink %lu", st.st_mode, (unsigned long)st.st_nlink);
	umask(022);
	char l[256];
	long n = readlink(fdp(fd), l, sizeof l - 1);
	l[n > 0 ? n : 0] = 0;
	CHECK("tmpfile_link", strncmp(l, "/dev/shm/#", 10) == 0 && strstr(l, " (deleted)"), "%s", l);
	EXPECT("tmpfile_write", write(fd, "tmp", 3), 3);
	char name[64], name2[64];
	snprintf(name, sizeof name, "/dev/shm/tmpfile.%d", (int)getpid());
	snprintf(name2, sizeof name2, "/dev/shm/tmpfile2.%d", (int)getpid());
	EXPECT("tmpfile_linkat_proc", linkat(AT_FDCWD, fdp(fd), AT_FDCWD, name, AT_SYMLINK_FOLLOW) ? -errno : 0, 0);
	fstat(fd, &st);
	EXPECT("tmpfile_nlink_1", st.st_nlink, 1);
	char b[8] = {0};
	int g = open(name, O_RDONLY);
	CHECK("tmpfile_named_data", g >= 0 && read(g, b, 3) == 3 && memcmp(b, "tmp", 3) == 0, "%s", b);
	close(g);
	EXPECT("tmpfile_linkat_empty_path", linkat(fd, "", AT_FDCWD, name2, AT_EMPTY_PATH) ? -errno : 0, 0);
	unlink(name);
	unlink(name2);
	close(fd);
	fd = open(d, O_TMPFILE | O_RDWR | O_EXCL, 0600);
	EXPECT("tmpfile_excl_no_link", linkat(AT_FDCWD, fdp(fd), AT_FDCWD, name, AT_SYMLINK_FOLLOW) ? -errno : 0, -ENOENT);
	close(fd);
	EXPECT("tmpfile_rdonly_einval", open(d, O_TMPFILE | O_RDONLY, 0600) < 0 ? -errno : 0, -EINVAL);
	EXPECT("tmpfile_creat_einval", open(d, O_TMPFILE | O_RDWR | O_CREAT, 0600) < 0 ? -errno : 0, -EINVAL);
	EXPECT("tmpfile_not_dir", open("/proc/self/exe", O_TMPFILE | O_RDWR, 0600) < 0 ? -errno : 0, -ENOTDIR);
	EXPECT("tmpfile_missing", open("/dev/shm/nonexistent", O_TMPFILE | O_RDWR, 0600) < 0 ? -errno : 0, -ENOENT);
}

int main(void) {
	umask(022);
	pipes();
	stdin_pipe();
	deleted();
	links();
	tmpfile_cases();
	return 0;
}
