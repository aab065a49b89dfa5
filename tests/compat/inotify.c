/* inotify for changes made inside the sandbox: argument checks, and the
 * events (and their order) of creating, opening, writing, reading,
 * closing, changing the mode of, renaming and removing files and
 * directories, on a directory's watch and on a file's own; merging of
 * identical events, one-shot watches, IN_IGNORED, reads and readiness.
 * argv[1] is the fixture directory (its rw/ is writable). */
#include "compat.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

static const char *names[] = {"ACCESS", "MODIFY", "ATTRIB", "CLOSE_WRITE", "CLOSE_NOWRITE", "OPEN", "MOVED_FROM",
			      "MOVED_TO", "CREATE", "DELETE", "DELETE_SELF", "MOVE_SELF"};

/* Prints every queued event as one line: "event WD MASK NAME". Cookies
 * are printed as "cookie" when two MOVED events share a non-zero one. */
static void drain(int fd, int dirwd) {
	char buf[4096] __attribute__((aligned(8)));
	unsigned last_cookie = 0;
	for (;;) {
		int n = read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (int i = 0; i < n;) {
			struct inotify_event *e = (struct inotify_event *)(buf + i);
			char m[256] = "";
			for (int b = 0; b < 12; b++)
				if (e->mask & (1u << b))
					strcat(m, names[b]), strcat(m, "|");
			if (e->mask & IN_ISDIR)
				strcat(m, "ISDIR|");
			if (e->mask & IN_IGNORED)
				strcat(m, "IGNORED|");
			const char *c = "";
			if (e->mask & IN_MOVED_FROM)
				last_cookie = e->cookie, c = e->cookie ? " cookie" : " nocookie";
			if (e->mask & IN_MOVED_TO)
				c = e->cookie && e->cookie == last_cookie ? " same-cookie" : " other-cookie";
			printf("event %s %s%s %s\n", e->wd == dirwd ? "dir" : "file", m, c, e->len ? e->name : "-");
			i += sizeof *e + e->len;
		}
	}
}

int main(int argc, char **argv) {
	char rw[256], a[300], b[300], d[300], f[300];
	snprintf(rw, sizeof rw, "%s/rw", argc > 1 ? argv[1] : "/tmp");
	snprintf(a, sizeof a, "%s/a", rw);
	snprintf(b, sizeof b, "%s/b", rw);
	snprintf(d, sizeof d, "%s/d", rw);
	snprintf(f, sizeof f, "%s/f", rw);

	EXPECT("init1_bad_flags", RAW1(SYS_inotify_init1, 1), -EINVAL);
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK("init1", in >= 0 && (fcntl(in, F_GETFD) & FD_CLOEXEC), "in %d", in);
	int p[2];
	pipe(p);
	EXPECT("add_watch_not_inotify", RAW3(SYS_inotify_add_watch, p[0], rw, IN_CREATE), -EINVAL);
	EXPECT("add_watch_no_events", RAW3(SYS_inotify_add_watch, in, rw, 0), -EINVAL);
	EXPECT("add_watch_missing", RAW3(SYS_inotify_add_watch, in, "/nonexistent/x", IN_CREATE), -ENOENT);
	EXPECT("add_watch_add_and_create", RAW3(SYS_inotify_add_watch, in, rw, IN_CREATE | IN_MASK_ADD | IN_MASK_CREATE),
	       -EINVAL);
	close(p[0]), close(p[1]);
	int dw = inotify_add_watch(in, rw, IN_ALL_EVENTS);
	CHECK("add_watch_dir", dw > 0, "wd %d", dw);
	EXPECT("same_path_same_wd", inotify_add_watch(in, rw, IN_ALL_EVENTS), dw);
	EXPECT("mask_create_existing", RAW3(SYS_inotify_add_watch, in, rw, IN_ALL_EVENTS | IN_MASK_CREATE), -EEXIST);
	EXPECT("rm_watch_bad", RAW2(SYS_inotify_rm_watch, in, 9999), -EINVAL);
	char buf[64];
	EXPECT("empty_eagain", RAW3(SYS_read, in, buf, sizeof buf), -EAGAIN);
	struct pollfd pf = {.fd = in, .events = POLLIN};
	EXPECT("not_ready", poll(&pf, 1, 0), 0);

	/* A file's life in a watched directory. */
	int fd = open(a, O_CREAT | O_WRONLY, 0644);
	write(fd, "x", 1);
	write(fd, "y", 1); /* merged with the first MODIFY */
	close(fd);
	EXPECT("ready", poll(&pf, 1, 0), 1);
	int q = 0;
	ioctl(in, FIONREAD, &q);
	CHECK("fionread", q > 0 && q % 16 == 0, "%d", q);
	EXPECT("short_read_einval", RAW3(SYS_read, in, buf, 8), -EINVAL);
	drain(in, dw);
	fd = open(a, O_RDONLY);
	read(fd, buf, 1);
	close(fd);
	chmod(a, 0600);
	rename(a, b);
	mkdir(d, 0755);
	rmdir(d);
	drain(in, dw);

	/* A file's own watch. */
	fd = open(f, O_CREAT | O_RDWR, 0644);
	int fw = inotify_add_watch(in, f, IN_ALL_EVENTS);
	CHECK("add_watch_file", fw > 0 && fw != dw, "wd %d", fw);
	EXPECT("onlydir_on_file", RAW3(SYS_inotify_add_watch, in, f, IN_ALL_EVENTS | IN_ONLYDIR), -ENOTDIR);
	pwrite(fd, "z", 1, 0);
	close(fd);
	unlink(f);
	unlink(b);
	drain(in, dw);

	/* One-shot, and rm_watch: IN_IGNORED. */
	fd = open(a, O_CREAT | O_WRONLY, 0644);
	close(fd);
	drain(in, dw);
	int ow = inotify_add_watch(in, a, IN_MODIFY | IN_ONESHOT);
	fd = open(a, O_WRONLY);
	write(fd, "1", 1);
	write(fd, "2", 1);
	close(fd);
	drain(in, dw);
	CHECK("oneshot_wd", ow > 0, "%d", ow);
	EXPECT("rm_watch", inotify_rm_watch(in, dw), 0);
	drain(in, dw);
	unlink(a);
	EXPECT("nothing_after_rm_watch", RAW3(SYS_read, in, buf, sizeof buf), -EAGAIN);
	close(in);
	return 0;
}
