/* Path-walk corner cases: symbolic links (ELOOP at 40), ENOTDIR,
 * ENAMETOOLONG, trailing slashes, `..` at the root and across mounts,
 * AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW. argv[1] is the fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static long st(const char *p, struct stat *s) {
	return RAW4(SYS_newfstatat, AT_FDCWD, p, s, 0);
}

static long lst(const char *p, struct stat *s) {
	return RAW4(SYS_newfstatat, AT_FDCWD, p, s, AT_SYMLINK_NOFOLLOW);
}

/* Whether two paths name the same file. */
static int same(const char *a, const char *b) {
	struct stat x, y;
	return st(a, &x) == 0 && st(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static long kind(const char *p, int follow) {
	struct stat s;
	long r = follow ? st(p, &s) : lst(p, &s);
	return r < 0 ? r : (long)(s.st_mode & S_IFMT);
}

static long readall(const char *p, char *buf, long n) {
	long fd = RAW3(SYS_open, p, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	long r = RAW3(SYS_read, fd, buf, n);
	RAW1(SYS_close, fd);
	return r;
}

int main(int argc, char **argv) {
	char rw[PATH_MAX - 64], ro[PATH_MAX - 64], buf[PATH_MAX + 64];
	if (argc < 2) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	snprintf(rw, sizeof rw, "%s/rw", argv[1]);
	snprintf(ro, sizeof ro, "%s/ro", argv[1]);
	if (chdir(rw)) {
		FAIL("setup", "chdir");
		return 1;
	}
	close(RAW3(SYS_open, "f", O_CREAT | O_WRONLY, 0644));
	mkdir("sub", 0755);
	mkdir("sub/inner", 0755);
	close(RAW3(SYS_open, "sub/inner/g", O_CREAT | O_WRONLY, 0644));

	/* Symbolic links. */
	symlink("l2", "l1");
	symlink("l1", "l2");
	EXPECT("loop_eloop", RAW3(SYS_open, "l1", O_RDONLY, 0), -ELOOP);
	EXPECT("loop_in_middle_eloop", kind("l1/x", 1), -ELOOP);
	EXPECT("loop_lstat_ok", kind("l1", 0), S_IFLNK);
	symlink("f", "c0");
	char name[32], prev[32];
	for (int i = 1; i <= 40; i++) {
		snprintf(name, sizeof name, "c%d", i);
		snprintf(prev, sizeof prev, "c%d", i - 1);
		symlink(prev, name);
	}
	EXPECT("chain_40_links_ok", kind("c39", 1), S_IFREG);
	EXPECT("chain_41_links_eloop", kind("c40", 1), -ELOOP);
	symlink("sub/inner", "ld");
	EXPECT("link_to_dir_dotdot_is_physical", same("ld/..", "sub"), 1);
	EXPECT("link_dir_trailing_slash_follows", kind("ld/", 0), S_IFDIR);
	EXPECT("link_dir_no_slash_lstat", kind("ld", 0), S_IFLNK);
	symlink("f", "lf");
	EXPECT("link_file_trailing_slash_enotdir", kind("lf/", 0), -ENOTDIR);
	EXPECT("link_file_as_dir_enotdir", kind("lf/x", 1), -ENOTDIR);
	symlink("nowhere", "dangle");
	EXPECT("dangling_stat_enoent", kind("dangle", 1), -ENOENT);
	EXPECT("dangling_lstat_ok", kind("dangle", 0), S_IFLNK);
	EXPECT("empty_symlink_target_enoent", RAW2(SYS_symlink, "", "empty"), -ENOENT);
	symlink("../ro/file", "up");
	long n = readall("up", buf, sizeof buf);
	CHECK("relative_link_across_mount", n == 6 && memcmp(buf, "hello\n", 6) == 0, "got %ld", n);
	char abs[PATH_MAX + 32];
	snprintf(abs, sizeof abs, "%s/file", ro);
	symlink(abs, "abs");
	n = readall("abs", buf, sizeof buf);
	CHECK("absolute_link", n == 6 && memcmp(buf, "hello\n", 6) == 0, "got %ld", n);
	symlink("/", "toroot");
	EXPECT("link_to_root", same("toroot", "/"), 1);
	EXPECT("link_to_root_dotdot", same("toroot/..", "/"), 1);
	symlink("sub/", "slashlink");
	EXPECT("link_with_trailing_slash_target", kind("slashlink", 1), S_IFDIR);

	/* Not directories. */
	EXPECT("file_as_dir_enotdir", kind("f/x", 1), -ENOTDIR);
	EXPECT("file_trailing_slash_enotdir", kind("f/", 1), -ENOTDIR);
	EXPECT("file_dot_enotdir", kind("f/.", 1), -ENOTDIR);
	EXPECT("file_dotdot_enotdir", kind("f/..", 1), -ENOTDIR);
	EXPECT("missing_then_more_enoent", kind("nothere/x", 1), -ENOENT);
	EXPECT("chdir_file_enotdir", RAW1(SYS_chdir, "f"), -ENOTDIR);

	/* Lengths. */
	memset(buf, 'n', 256);
	buf[256] = 0;
	EXPECT("component_256_enametoolong", kind(buf, 1), -ENAMETOOLONG);
	buf[255] = 0;
	EXPECT("component_255_enoent", kind(buf, 1), -ENOENT);
	for (int i = 0; i < PATH_MAX; i += 2)
		memcpy(buf + i, "./", 2);
	buf[PATH_MAX] = 0;
	EXPECT("path_4096_enametoolong", kind(buf, 1), -ENAMETOOLONG);
	buf[PATH_MAX - 1] = 0;
	EXPECT("path_4095_ok", kind(buf, 1), S_IFDIR);
	memset(buf, '/', PATH_MAX + 10);
	buf[PATH_MAX + 10] = 0;
	EXPECT("slashes_4106_enametoolong", kind(buf, 1), -ENAMETOOLONG);

	/* Slashes and dots. */
	EXPECT("double_slashes", kind("sub//inner///g", 1), S_IFREG);
	EXPECT("dir_trailing_slash", kind("sub/", 1), S_IFDIR);
	EXPECT("dir_trailing_dot", kind("sub/.", 1), S_IFDIR);
	EXPECT("dot_components", same("./sub/./inner/.", "sub/inner"), 1);
	EXPECT("dotdot_components", same("sub/inner/../inner/..", "sub"), 1);
	EXPECT("root_dotdot", same("/..", "/"), 1);
	EXPECT("root_dotdot_many", same("/../../..", "/"), 1);
	EXPECT("dotdot_across_mount", same("..", argv[1]), 1);
	snprintf(buf, sizeof buf, "%s/../ro/file", rw);
	EXPECT("dotdot_out_of_mount_then_down", kind(buf, 1), S_IFREG);
	EXPECT("empty_path_enoent", kind("", 1), -ENOENT);
	EXPECT("bad_path_efault", kind(BAD_PTR, 1), -EFAULT);

	/* AT_EMPTY_PATH and descriptors. */
	struct stat s1, s2;
	long fd = RAW3(SYS_open, "f", O_RDONLY, 0);
	long r = RAW4(SYS_newfstatat, fd, "", &s1, AT_EMPTY_PATH);
	CHECK("empty_path_fd", r == 0 && (s1.st_mode & S_IFMT) == S_IFREG, "got %ld", r);
	EXPECT("empty_path_without_flag_enoent", RAW4(SYS_newfstatat, fd, "", &s1, 0), -ENOENT);
	r = RAW4(SYS_newfstatat, AT_FDCWD, "", &s1, AT_EMPTY_PATH);
	CHECK("empty_path_cwd", r == 0 && st(".", &s2) == 0 && s1.st_ino == s2.st_ino, "got %ld", r);
	EXPECT("relative_to_file_fd_enotdir", RAW4(SYS_newfstatat, fd, "x", &s1, 0), -ENOTDIR);
	EXPECT("bad_fd_ebadf", RAW4(SYS_newfstatat, 999, "x", &s1, 0), -EBADF);
	EXPECT("bad_flags_einval", RAW4(SYS_newfstatat, AT_FDCWD, "f", &s1, 0x40000000), -EINVAL);
	RAW1(SYS_close, fd);
	long dfd = RAW3(SYS_open, "sub", O_RDONLY | O_DIRECTORY, 0);
	r = RAW4(SYS_newfstatat, dfd, "inner/g", &s1, 0);
	CHECK("dirfd_relative", r == 0 && (s1.st_mode & S_IFMT) == S_IFREG, "got %ld", r);
	r = RAW4(SYS_newfstatat, dfd, "../f", &s1, 0);
	CHECK("dirfd_dotdot", r == 0 && (s1.st_mode & S_IFMT) == S_IFREG, "got %ld", r);
	r = RAW4(SYS_newfstatat, dfd, "../lf", &s1, AT_SYMLINK_NOFOLLOW);
	CHECK("dirfd_nofollow", r == 0 && (s1.st_mode & S_IFMT) == S_IFLNK, "got %ld", r);
	RAW1(SYS_close, dfd);

	/* The working directory at the root. */
	RAW1(SYS_chdir, "/");
	for (int i = 0; i < 5; i++)
		RAW1(SYS_chdir, "..");
	r = RAW2(SYS_getcwd, buf, sizeof buf);
	CHECK("chdir_dotdot_stays_at_root", r == 2 && strcmp(buf, "/") == 0, "got %ld %s", r, buf);
	RAW1(SYS_chdir, rw);
	r = RAW2(SYS_getcwd, buf, sizeof buf);
	CHECK("getcwd_in_mount", r == (long)strlen(rw) + 1 && strcmp(buf, rw) == 0, "got %ld %s", r, buf);
	RAW1(SYS_chdir, "ld");
	r = RAW2(SYS_getcwd, buf, sizeof buf);
	snprintf(abs, sizeof abs, "%s/sub/inner", rw);
	CHECK("getcwd_after_link_is_physical", r > 0 && strcmp(buf, abs) == 0, "got %ld %s", r, buf);
	return 0;
}
