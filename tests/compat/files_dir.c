/* Names: mkdir, rmdir, unlink, rename (and renameat2 flags), link,
 * symlink, mknod, getdents/getdents64, chdir/fchdir/getcwd, umask.
 * argv[1] is the fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static long kind(const char *p) {
	struct stat s;
	long r = RAW4(SYS_newfstatat, AT_FDCWD, p, &s, AT_SYMLINK_NOFOLLOW);
	return r < 0 ? r : (long)(s.st_mode & S_IFMT);
}

static long mode_of(const char *p) {
	struct stat s;
	long r = RAW4(SYS_newfstatat, AT_FDCWD, p, &s, AT_SYMLINK_NOFOLLOW);
	return r < 0 ? r : (long)s.st_mode;
}

static long nlink(const char *p) {
	struct stat s;
	long r = RAW4(SYS_newfstatat, AT_FDCWD, p, &s, AT_SYMLINK_NOFOLLOW);
	return r < 0 ? r : (long)s.st_nlink;
}

static void touch(const char *p, const char *body) {
	long fd = RAW3(SYS_open, p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	RAW3(SYS_write, fd, body, strlen(body));
	RAW1(SYS_close, fd);
}

static int has(const char *p, const char *body) {
	char buf[64];
	long fd = RAW3(SYS_open, p, O_RDONLY, 0);
	if (fd < 0)
		return 0;
	long n = RAW3(SYS_read, fd, buf, sizeof buf);
	RAW1(SYS_close, fd);
	return n == (long)strlen(body) && memcmp(buf, body, n) == 0;
}

struct d64 {
	unsigned long long ino;
	long long off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

static int cmp(const void *a, const void *b) {
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists a directory with getdents64 through a small buffer; prints the
 * sorted "name:type" entries. Returns the number of entries or -errno. */
static long list64(const char *dir, long bufsize, int print) {
	long fd = RAW3(SYS_open, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	char buf[4096];
	char *names[256];
	long count = 0, n;
	while ((n = RAW3(SYS_getdents64, fd, buf, bufsize)) > 0) {
		for (long off = 0; off < n;) {
			struct d64 *d = (struct d64 *)(buf + off);
			if (count < 256) {
				names[count] = malloc(300);
				snprintf(names[count], 300, "%s:%d", d->name, d->type);
				count++;
			}
			off += d->reclen;
		}
	}
	RAW1(SYS_close, fd);
	if (n < 0)
		return n;
	qsort(names, count, sizeof names[0], cmp);
	if (print) {
		printf("dir %s:", dir);
		for (long i = 0; i < count; i++)
			printf(" %s", names[i]);
		printf("\n");
	}
	return count;
}

int main(int argc, char **argv) {
	char rw[PATH_MAX - 64], buf[PATH_MAX];
	if (argc < 2) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	snprintf(rw, sizeof rw, "%s/rw", argv[1]);
	if (chdir(rw)) {
		FAIL("setup", "chdir");
		return 1;
	}
	umask(022);

	/* mkdir and rmdir */
	EXPECT("mkdir", RAW2(SYS_mkdir, "d", 0777), 0);
	EXPECT("mkdir_mode_umask", mode_of("d"), S_IFDIR | 0755);
	EXPECT("mkdir_exists", RAW2(SYS_mkdir, "d", 0755), -EEXIST);
	EXPECT("mkdir_trailing_slash", RAW2(SYS_mkdir, "e/", 0755), 0);
	EXPECT("mkdir_missing_parent", RAW2(SYS_mkdir, "nope/x", 0755), -ENOENT);
	EXPECT("mkdir_dot_eexist", RAW2(SYS_mkdir, ".", 0755), -EEXIST);
	EXPECT("mkdir_root_eexist", RAW2(SYS_mkdir, "/", 0755), -EEXIST);
	EXPECT("mkdir_sticky_kept", RAW2(SYS_mkdir, "st", 01777), 0);
	EXPECT("mkdir_sticky_mode", mode_of("st"), S_IFDIR | 01755);
	EXPECT("mkdirat", RAW3(SYS_mkdirat, AT_FDCWD, "d/sub", 0700), 0);
	EXPECT("nlink_parent_grows", nlink("d"), 3);
	touch("d/sub/file", "x");
	EXPECT("rmdir_not_empty", RAW1(SYS_rmdir, "d"), -ENOTEMPTY);
	EXPECT("rmdir_dot_einval", RAW1(SYS_rmdir, "d/."), -EINVAL);
	EXPECT("rmdir_dotdot_enotempty", RAW1(SYS_rmdir, "d/sub/.."), -ENOTEMPTY);
	EXPECT("rmdir_file_enotdir", RAW1(SYS_rmdir, "d/sub/file"), -ENOTDIR);
	EXPECT("rmdir_missing", RAW1(SYS_rmdir, "nope"), -ENOENT);
	EXPECT("rmdir_trailing_slash", RAW1(SYS_rmdir, "e/"), 0);
	EXPECT("rmdir_gone", kind("e"), -ENOENT);

	/* unlink */
	EXPECT("unlink_dir_eisdir", RAW1(SYS_unlink, "d"), -EISDIR);
	EXPECT("unlink_missing", RAW1(SYS_unlink, "nope"), -ENOENT);
	EXPECT("unlink_trailing_slash_enotdir", RAW1(SYS_unlink, "d/sub/file/"), -ENOTDIR);
	EXPECT("unlinkat_bad_flags", RAW3(SYS_unlinkat, AT_FDCWD, "d/sub/file", 1), -EINVAL);
	long open_fd = RAW3(SYS_open, "d/sub/file", O_RDONLY, 0);
	EXPECT("unlink", RAW1(SYS_unlink, "d/sub/file"), 0);
	char c = 0;
	CHECK("unlinked_still_readable", RAW3(SYS_read, open_fd, &c, 1) == 1 && c == 'x', "got %c", c);
	struct stat s;
	RAW2(SYS_fstat, open_fd, &s);
	EXPECT("unlinked_nlink_zero", s.st_nlink, 0);
	RAW1(SYS_close, open_fd);
	EXPECT("unlinkat_removedir", RAW3(SYS_unlinkat, AT_FDCWD, "d/sub", AT_REMOVEDIR), 0);
	EXPECT("unlinkat_removedir_file", RAW3(SYS_unlinkat, AT_FDCWD, "missing", AT_REMOVEDIR), -ENOENT);
	EXPECT("unlink_dot_eisdir", RAW1(SYS_unlink, "."), -EISDIR);

	/* rename */
	touch("a", "A");
	touch("b", "B");
	mkdir("da", 0755);
	mkdir("db", 0755);
	mkdir("full", 0755);
	touch("full/x", "X");
	EXPECT("rename", RAW2(SYS_rename, "a", "a2"), 0);
	CHECK("rename_moved", kind("a") == -ENOENT && has("a2", "A"), "not moved");
	EXPECT("rename_replaces", RAW2(SYS_rename, "a2", "b"), 0);
	CHECK("rename_replaced", has("b", "A") && kind("a2") == -ENOENT, "not replaced");
	EXPECT("rename_same_file", RAW2(SYS_rename, "b", "b"), 0);
	RAW2(SYS_link, "b", "b-link");
	EXPECT("rename_hard_links_noop", RAW2(SYS_rename, "b", "b-link"), 0);
	CHECK("rename_hard_links_both_stay", kind("b") == S_IFREG && kind("b-link") == S_IFREG, "removed");
	EXPECT("rename_dir_over_empty_dir", RAW2(SYS_rename, "da", "db"), 0);
	CHECK("rename_dir_moved", kind("da") == -ENOENT && kind("db") == S_IFDIR, "not moved");
	EXPECT("rename_dir_over_full_dir", RAW2(SYS_rename, "db", "full"), -ENOTEMPTY);
	EXPECT("rename_file_over_dir", RAW2(SYS_rename, "b", "db"), -EISDIR);
	EXPECT("rename_dir_over_file", RAW2(SYS_rename, "db", "b"), -ENOTDIR);
	EXPECT("rename_into_own_subdir", RAW2(SYS_rename, "full", "full/inside"), -EINVAL);
	EXPECT("rename_missing", RAW2(SYS_rename, "nope", "x"), -ENOENT);
	EXPECT("rename_dot_ebusy", RAW2(SYS_rename, ".", "x"), -EBUSY);
	EXPECT("rename_to_dotdot", RAW2(SYS_rename, "b", "db/.."), -EBUSY);
	EXPECT("rename_file_trailing_slash", RAW2(SYS_rename, "b/", "c"), -ENOTDIR);
	EXPECT("rename_dir_trailing_slash", RAW2(SYS_rename, "db/", "dc/"), 0);
	snprintf(buf, sizeof buf, "%s/ro/moved", argv[1]);
	EXPECT("rename_across_mounts_exdev", RAW2(SYS_rename, "b", buf), -EXDEV);
	touch("n1", "1");
	touch("n2", "2");
	EXPECT("renameat2_noreplace", RAW5(SYS_renameat2, AT_FDCWD, "n1", AT_FDCWD, "n2", 1), -EEXIST);
	EXPECT("renameat2_exchange", RAW5(SYS_renameat2, AT_FDCWD, "n1", AT_FDCWD, "n2", 2), 0);
	CHECK("renameat2_exchanged", has("n1", "2") && has("n2", "1"), "not exchanged");
	EXPECT("renameat2_exchange_missing", RAW5(SYS_renameat2, AT_FDCWD, "n1", AT_FDCWD, "nope", 2), -ENOENT);
	EXPECT("renameat2_both_flags", RAW5(SYS_renameat2, AT_FDCWD, "n1", AT_FDCWD, "n2", 3), -EINVAL);
	EXPECT("renameat2_bad_flags", RAW5(SYS_renameat2, AT_FDCWD, "n1", AT_FDCWD, "n2", 8), -EINVAL);
	EXPECT("renameat2_noreplace_ok", RAW5(SYS_renameat2, AT_FDCWD, "n1", AT_FDCWD, "n3", 1), 0);
	/* Onto an ancestor of the source: Linux's rename trap. */
	RAW2(SYS_mkdir, "trap", 0755);
	RAW2(SYS_mkdir, "trap/inner", 0755);
	EXPECT("rename_onto_parent_enotempty", RAW2(SYS_rename, "trap/inner", "trap"), -ENOTEMPTY);
	EXPECT("rename_onto_grandparent_enotempty", RAW2(SYS_rename, "trap/inner", "."), -EBUSY);
	EXPECT("exchange_with_parent_einval", RAW5(SYS_renameat2, AT_FDCWD, "trap/inner", AT_FDCWD, "trap", 2), -EINVAL);
	CHECK("trap_intact", RAW2(SYS_access, "trap/inner", 0) == 0, "gone");
	RAW1(SYS_rmdir, "trap/inner");
	RAW1(SYS_rmdir, "trap");
	long dfd = RAW3(SYS_open, "dc", O_RDONLY | O_DIRECTORY, 0);
	EXPECT("renameat_dirfds", RAW4(SYS_renameat, AT_FDCWD, "n3", dfd, "n3"), 0);
	CHECK("renameat_moved", has("dc/n3", "2"), "not moved");

	/* link and symlink */
	EXPECT("link", RAW2(SYS_link, "n2", "n2-hard"), 0);
	EXPECT("link_nlink", nlink("n2"), 2);
	EXPECT("link_exists", RAW2(SYS_link, "n2", "n2-hard"), -EEXIST);
	EXPECT("link_dir_eperm", RAW2(SYS_link, "dc", "dc-hard"), -EPERM);
	EXPECT("link_missing", RAW2(SYS_link, "nope", "x"), -ENOENT);
	EXPECT("symlink", RAW2(SYS_symlink, "n2", "n2-soft"), 0);
	EXPECT("symlink_exists", RAW2(SYS_symlink, "x", "n2-soft"), -EEXIST);
	EXPECT("symlinkat", RAW3(SYS_symlinkat, "../n2", dfd, "up"), 0);
	CHECK("symlinkat_resolves", has("dc/up", "1"), "wrong target");
	EXPECT("linkat_symlink_itself", RAW5(SYS_linkat, AT_FDCWD, "n2-soft", AT_FDCWD, "ln-nofollow", 0), 0);
	EXPECT("linkat_symlink_itself_kind", kind("ln-nofollow"), S_IFLNK);
	EXPECT("linkat_follow",
	       RAW5(SYS_linkat, AT_FDCWD, "n2-soft", AT_FDCWD, "ln-follow", 0x400 /* AT_SYMLINK_FOLLOW */), 0);
	EXPECT("linkat_follow_kind", kind("ln-follow"), S_IFREG);
	long nfd = RAW3(SYS_open, "n2", O_RDONLY, 0);
	EXPECT("linkat_empty_path", RAW5(SYS_linkat, nfd, "", AT_FDCWD, "ln-empty", AT_EMPTY_PATH), 0);
	EXPECT("linkat_bad_flags", RAW5(SYS_linkat, AT_FDCWD, "n2", AT_FDCWD, "ln-x", 1), -EINVAL);
	RAW1(SYS_close, nfd);

	/* mknod */
	EXPECT("mknod_regular", RAW3(SYS_mknod, "node", S_IFREG | 0600, 0), 0);
	EXPECT("mknod_regular_kind", mode_of("node"), S_IFREG | 0600);
	EXPECT("mknod_default_regular", RAW3(SYS_mknod, "node0", 0600, 0), 0);
	EXPECT("mknod_fifo", RAW3(SYS_mknod, "fifo", S_IFIFO | 0644, 0), 0);
	EXPECT("mknod_fifo_kind", mode_of("fifo"), S_IFIFO | 0644);
	EXPECT("mknodat_socket", RAW4(SYS_mknodat, AT_FDCWD, "sock", S_IFSOCK | 0644, 0), 0);
	EXPECT("mknod_socket_kind", kind("sock"), S_IFSOCK);
	EXPECT("mknod_dir_eperm", RAW3(SYS_mknod, "ndir", S_IFDIR | 0755, 0), -EPERM);
	EXPECT("mknod_bad_type", RAW3(SYS_mknod, "nbad", 0170000 | 0644, 0), -EINVAL);
	EXPECT("mknod_exists", RAW3(SYS_mknod, "fifo", S_IFIFO | 0644, 0), -EEXIST);
	EXPECT("mknod_chr", RAW3(SYS_mknod, "chr", S_IFCHR | 0600, 0x0103), 0);

	/* getdents64 / getdents */
	mkdir("many", 0755);
	for (int i = 0; i < 60; i++) {
		snprintf(buf, sizeof buf, "many/entry-with-a-long-name-%02d", i);
		touch(buf, "");
	}
	mkdir("many/subdir", 0755);
	symlink("x", "many/link");
	EXPECT("getdents64_count", list64("many", 4096, 0), 64);
	EXPECT("getdents64_small_buffer_count", list64("many", 80, 0), 64);
	EXPECT("getdents64_tiny_buffer_einval", list64("many", 10, 0), -EINVAL);
	list64("dc", 4096, 1);
	long fd = RAW3(SYS_open, "many", O_RDONLY | O_DIRECTORY, 0);
	char dbuf[4096];
	long first = RAW3(SYS_getdents64, fd, dbuf, sizeof dbuf);
	RAW3(SYS_lseek, fd, 0, SEEK_SET);
	long again = RAW3(SYS_getdents64, fd, dbuf, sizeof dbuf);
	CHECK("getdents64_rewind", first > 0 && first == again, "first %ld again %ld", first, again);
	RAW3(SYS_lseek, fd, 0, SEEK_SET);
	EXPECT("getdents64_bad_buffer", RAW3(SYS_getdents64, fd, BAD_PTR, 4096), -EFAULT);
	RAW1(SYS_close, fd);
	fd = RAW3(SYS_open, "n2", O_RDONLY, 0);
	EXPECT("getdents64_file_enotdir", RAW3(SYS_getdents64, fd, dbuf, sizeof dbuf), -ENOTDIR);
	RAW1(SYS_close, fd);
	EXPECT("getdents64_bad_fd", RAW3(SYS_getdents64, 999, dbuf, sizeof dbuf), -EBADF);
	fd = RAW3(SYS_open, "dc", O_RDONLY | O_DIRECTORY, 0);
	long total = 0, n, entries = 0, types_ok = 1;
	while ((n = RAW3(SYS_getdents, fd, dbuf, sizeof dbuf)) > 0) {
		for (long off = 0; off < n;) {
			unsigned short reclen = *(unsigned short *)(dbuf + off + 16);
			char *name = dbuf + off + 18;
			unsigned char type = dbuf[off + reclen - 1];
			if (strcmp(name, "up") == 0 && type != 10 /* DT_LNK */)
				types_ok = 0;
			if (strcmp(name, "n3") == 0 && type != 8 /* DT_REG */)
				types_ok = 0;
			entries++;
			off += reclen;
		}
		total += n;
	}
	CHECK("getdents_old", n == 0 && entries == 4 && types_ok, "n %ld entries %ld types %ld", n, entries,
	      types_ok);
	RAW1(SYS_close, fd);

	/* chdir, fchdir, getcwd */
	EXPECT("chdir", RAW1(SYS_chdir, "dc"), 0);
	long r = RAW2(SYS_getcwd, buf, sizeof buf);
	snprintf(dbuf, sizeof dbuf, "%s/dc", rw);
	CHECK("getcwd", r == (long)strlen(dbuf) + 1 && strcmp(buf, dbuf) == 0, "got %ld %s", r, buf);
	EXPECT("getcwd_erange", RAW2(SYS_getcwd, buf, 5), -ERANGE);
	EXPECT("getcwd_zero_erange", RAW2(SYS_getcwd, buf, 0), -ERANGE);
	EXPECT("getcwd_bad_buf", RAW2(SYS_getcwd, BAD_PTR, 100), -EFAULT);
	EXPECT("chdir_missing", RAW1(SYS_chdir, "nope"), -ENOENT);
	fd = RAW3(SYS_open, "n3", O_RDONLY, 0);
	EXPECT("fchdir_file_enotdir", RAW1(SYS_fchdir, fd), -ENOTDIR);
	RAW1(SYS_close, fd);
	EXPECT("fchdir_bad_fd", RAW1(SYS_fchdir, 999), -EBADF);
	EXPECT("fchdir", RAW1(SYS_fchdir, dfd), 0);
	EXPECT("fchdir_moved", kind("n3"), S_IFREG);
	RAW1(SYS_chdir, rw);
	mkdir("gone", 0755);
	RAW1(SYS_chdir, "gone");
	RAW1(SYS_rmdir, "../gone");
	EXPECT("getcwd_deleted_enoent", RAW2(SYS_getcwd, buf, sizeof buf), -ENOENT);
	EXPECT("create_in_deleted_cwd", RAW3(SYS_open, "x", O_CREAT | O_RDWR, 0644), -ENOENT);
	RAW1(SYS_chdir, rw);

	/* umask */
	EXPECT("umask_returns_old", RAW1(SYS_umask, 077), 022);
	touch("masked", "");
	EXPECT("umask_applies", mode_of("masked"), S_IFREG | 0600);
	EXPECT("umask_high_bits_ignored", RAW1(SYS_umask, 0777777), 077);
	EXPECT("umask_masked_to_0777", RAW1(SYS_umask, 022), 0777);
	return 0;
}
