/* open, openat, openat2, creat, close_range: flags and their errors.
 * argv[1] is the fixture directory (see tests/compat.rs); cases run in
 * its writable `rw` subdirectory. */
#include "compat.h"
#include <fcntl.h>
#include <sys/stat.h>

/* <linux/openat2.h>, which musl's headers lack. */
struct open_how {
	unsigned long long flags, mode, resolve;
};
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

static long op(const char *p, long flags, long mode) {
	return RAW3(SYS_open, p, flags, mode);
}

static long fmode(long fd) {
	struct stat st;
	long r = RAW2(SYS_fstat, fd, &st);
	return r < 0 ? r : (long)st.st_mode;
}

static long fsize(long fd) {
	struct stat st;
	long r = RAW2(SYS_fstat, fd, &st);
	return r < 0 ? r : (long)st.st_size;
}

static long o2(long dirfd, const char *p, unsigned long long flags, unsigned long long mode,
	       unsigned long long resolve, long size) {
	struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
	return RAW4(SYS_openat2, dirfd, p, &how, size);
}

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	umask(022);
	char buf[64];

	long fd = op("a", O_CREAT | O_WRONLY, 0666);
	CHECK("creat_mode_umask", fd >= 0 && fmode(fd) == (S_IFREG | 0644), "fd %ld mode %lo", fd, fmode(fd));
	EXPECT("write_new", RAW3(SYS_write, fd, "hello", 5), 5);
	EXPECT("read_wronly_ebadf", RAW3(SYS_read, fd, buf, 1), -EBADF);
	RAW1(SYS_close, fd);
	EXPECT("excl_exists", op("a", O_CREAT | O_EXCL | O_RDWR, 0644), -EEXIST);
	symlink("target-of-dangling", "dangling");
	EXPECT("excl_dangling_symlink", op("dangling", O_CREAT | O_EXCL | O_RDWR, 0644), -EEXIST);
	fd = op("dangling", O_CREAT | O_RDWR, 0600);
	CHECK("creat_through_dangling", fd >= 0 && access("target-of-dangling", F_OK) == 0, "fd %ld", fd);
	RAW1(SYS_close, fd);
	EXPECT("nofollow_creat_dangling", op("dangling", O_CREAT | O_NOFOLLOW | O_RDWR, 0600), -ELOOP);

	fd = op("a", O_RDONLY, 0);
	long n = RAW3(SYS_read, fd, buf, sizeof buf);
	CHECK("read_back", n == 5 && memcmp(buf, "hello", 5) == 0, "got %ld", n);
	EXPECT("write_rdonly_ebadf", RAW3(SYS_write, fd, "x", 1), -EBADF);
	RAW1(SYS_close, fd);
	fd = op("a", O_RDONLY | O_TRUNC, 0);
	CHECK("trunc_rdonly_truncates", fd >= 0 && fsize(fd) == 0, "fd %ld size %ld", fd, fsize(fd));
	RAW1(SYS_close, fd);
	fd = op("a", O_WRONLY, 0);
	RAW3(SYS_write, fd, "0123456789", 10);
	RAW1(SYS_close, fd);
	fd = op("a", O_WRONLY | O_TRUNC, 0);
	EXPECT("trunc_wronly", fsize(fd), 0);
	RAW1(SYS_close, fd);

	fd = op("a", O_RDWR | O_APPEND, 0);
	RAW3(SYS_write, fd, "abc", 3);
	RAW3(SYS_lseek, fd, 0, SEEK_SET);
	RAW3(SYS_write, fd, "def", 3);
	EXPECT("append_goes_to_end", fsize(fd), 6);
	EXPECT("append_offset_after_write", RAW3(SYS_lseek, fd, 0, SEEK_CUR), 6);
	long fl = RAW2(SYS_fcntl, fd, F_GETFL);
	EXPECT("getfl", fl, O_RDWR | O_APPEND | 0100000 /* O_LARGEFILE */);
	EXPECT("setfl_clear_append", RAW3(SYS_fcntl, fd, F_SETFL, O_NONBLOCK), 0);
	fl = RAW2(SYS_fcntl, fd, F_GETFL);
	EXPECT("getfl_after_setfl", fl, O_RDWR | O_NONBLOCK | 0100000);
	EXPECT("cloexec_off", RAW2(SYS_fcntl, fd, F_GETFD), 0);
	RAW1(SYS_close, fd);
	fd = op("a", O_RDONLY | O_CLOEXEC, 0);
	EXPECT("cloexec_on", RAW2(SYS_fcntl, fd, F_GETFD), FD_CLOEXEC);
	RAW1(SYS_close, fd);

	mkdir("d", 0755);
	EXPECT("directory_on_file", op("a", O_RDONLY | O_DIRECTORY, 0), -ENOTDIR);
	fd = op("d", O_RDONLY | O_DIRECTORY, 0);
	CHECK("directory_on_dir", fd >= 0 && (fmode(fd) & S_IFMT) == S_IFDIR, "fd %ld", fd);
	EXPECT("read_dir_eisdir", RAW3(SYS_read, fd, buf, 1), -EISDIR);
	RAW1(SYS_close, fd);
	EXPECT("dir_wronly_eisdir", op("d", O_WRONLY, 0), -EISDIR);
	EXPECT("dir_rdwr_eisdir", op("d", O_RDWR, 0), -EISDIR);
	EXPECT("dir_creat_eisdir", op("d", O_CREAT | O_RDONLY, 0644), -EISDIR);
	EXPECT("creat_trailing_slash_eisdir", op("newdir/", O_CREAT | O_RDWR, 0644), -EISDIR);
	EXPECT("creat_directory_flag_einval", op("newfile", O_CREAT | O_DIRECTORY | O_RDWR, 0644), -EINVAL);
	EXPECT("creat_missing_parent", op("nodir/x", O_CREAT | O_RDWR, 0644), -ENOENT);
	EXPECT("enoent", op("missing", O_RDONLY, 0), -ENOENT);
	EXPECT("empty_path_enoent", op("", O_RDONLY, 0), -ENOENT);
	EXPECT("bad_path_efault", op(BAD_PTR, O_RDONLY, 0), -EFAULT);

	symlink("a", "la");
	symlink("d", "ld");
	EXPECT("nofollow_symlink_eloop", op("la", O_RDONLY | O_NOFOLLOW, 0), -ELOOP);
	fd = op("la", O_PATH | O_NOFOLLOW, 0);
	CHECK("path_nofollow_is_link", fd >= 0 && (fmode(fd) & S_IFMT) == S_IFLNK, "fd %ld mode %lo", fd,
	      fmode(fd));
	RAW1(SYS_close, fd);
	fd = op("ld/", O_RDONLY | O_NOFOLLOW, 0);
	CHECK("nofollow_trailing_slash_follows", fd >= 0, "got %ld", fd);
	RAW1(SYS_close, fd);
	fd = op("a", O_PATH, 0);
	EXPECT("path_read_ebadf", RAW3(SYS_read, fd, buf, 1), -EBADF);
	EXPECT("path_write_ebadf", RAW3(SYS_write, fd, "x", 1), -EBADF);
	EXPECT("path_fstat", fmode(fd), S_IFREG | 0644);
	EXPECT("path_getfl", RAW2(SYS_fcntl, fd, F_GETFL), O_PATH);
	EXPECT("path_fchmod_ebadf", RAW2(SYS_fchmod, fd, 0600), -EBADF);
	EXPECT("path_fchown_ebadf", RAW3(SYS_fchown, fd, 0, 0), -EBADF);
	EXPECT("path_fgetxattr_ebadf", RAW4(SYS_fgetxattr, fd, "user.x", buf, sizeof buf), -EBADF);
	EXPECT("path_flock_ebadf", RAW2(SYS_flock, fd, 1), -EBADF);
	EXPECT("path_fsync_ebadf", RAW1(SYS_fsync, fd), -EBADF);
	EXPECT("path_fadvise_ebadf", RAW4(SYS_fadvise64, fd, 0, 0, 0), -EBADF);
	EXPECT("path_setfl_ebadf", RAW3(SYS_fcntl, fd, F_SETFL, O_NONBLOCK), -EBADF);
	EXPECT("path_futimens_ebadf", RAW4(SYS_utimensat, fd, NULL, NULL, 0), -EBADF);
	EXPECT("path_fchownat_empty_path", RAW5(SYS_fchownat, fd, "", 0, 0, AT_EMPTY_PATH), 0);
	EXPECT("path_dupfd", RAW3(SYS_fcntl, fd, F_DUPFD, 50), 50);
	RAW1(SYS_close, 50);
	RAW1(SYS_close, fd);
	fd = op("d", O_PATH | O_DIRECTORY, 0);
	long at = RAW4(SYS_openat, fd, "../a", O_RDONLY, 0);
	CHECK("path_dirfd_openat", at >= 0, "got %ld", at);
	RAW1(SYS_close, at);
	RAW1(SYS_close, fd);

	fd = RAW2(SYS_creat, "c", 0600);
	CHECK("creat", fd >= 0 && fmode(fd) == (S_IFREG | 0600), "fd %ld", fd);
	EXPECT("creat_is_wronly", RAW2(SYS_fcntl, fd, F_GETFL) & O_ACCMODE, O_WRONLY);
	RAW1(SYS_close, fd);

	long dfd = op("d", O_RDONLY | O_DIRECTORY, 0);
	fd = RAW4(SYS_openat, dfd, "inner", O_CREAT | O_RDWR, 0644);
	CHECK("openat_dirfd_create", fd >= 0 && access("d/inner", F_OK) == 0, "fd %ld", fd);
	long ffd = fd;
	EXPECT("openat_file_dirfd_enotdir", RAW4(SYS_openat, ffd, "x", O_RDONLY, 0), -ENOTDIR);
	EXPECT("openat_bad_dirfd_ebadf", RAW4(SYS_openat, 999, "x", O_RDONLY, 0), -EBADF);
	at = RAW4(SYS_openat, 999, argv[1], O_RDONLY, 0);
	CHECK("openat_absolute_ignores_dirfd", at >= 0, "got %ld", at);
	RAW1(SYS_close, at);
	EXPECT("openat_file_dirfd_absolute_ok", RAW4(SYS_openat, ffd, "/", O_RDONLY, 0) >= 0, 1);
	RAW1(SYS_close, ffd);

	/* openat2 */
	EXPECT("openat2_small_size_einval", o2(dfd, "inner", O_RDONLY, 0, 0, 16), -EINVAL);
	EXPECT("openat2_unknown_resolve_einval", o2(dfd, "inner", O_RDONLY, 0, 1 << 20, 24), -EINVAL);
	EXPECT("openat2_mode_without_creat_einval", o2(dfd, "inner", O_RDONLY, 0644, 0, 24), -EINVAL);
	EXPECT("openat2_unknown_flag_einval", o2(dfd, "inner", O_RDONLY | (1 << 30), 0, 0, 24), -EINVAL);
	fd = o2(dfd, "inner", O_RDONLY, 0, RESOLVE_BENEATH, 24);
	CHECK("openat2_beneath_ok", fd >= 0, "got %ld", fd);
	RAW1(SYS_close, fd);
	EXPECT("openat2_beneath_dotdot_exdev", o2(dfd, "../a", O_RDONLY, 0, RESOLVE_BENEATH, 24), -EXDEV);
	EXPECT("openat2_beneath_absolute_exdev", o2(dfd, "/", O_RDONLY, 0, RESOLVE_BENEATH, 24), -EXDEV);
	symlink("../a", "d/up");
	EXPECT("openat2_beneath_symlink_out_exdev", o2(dfd, "up", O_RDONLY, 0, RESOLVE_BENEATH, 24), -EXDEV);
	EXPECT("openat2_no_symlinks_eloop", o2(dfd, "up", O_RDONLY, 0, RESOLVE_NO_SYMLINKS, 24), -ELOOP);
	fd = o2(dfd, "/inner", O_RDONLY, 0, RESOLVE_IN_ROOT, 24);
	CHECK("openat2_in_root_absolute", fd >= 0, "got %ld", fd);
	RAW1(SYS_close, fd);
	fd = o2(dfd, "../../inner", O_RDONLY, 0, RESOLVE_IN_ROOT, 24);
	CHECK("openat2_in_root_dotdot_clamped", fd >= 0, "got %ld", fd);
	RAW1(SYS_close, fd);
	EXPECT("openat2_beneath_and_in_root_einval",
	       o2(dfd, "inner", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT, 24), -EINVAL);
	fd = o2(dfd, "made", O_CREAT | O_RDWR, 0640, 0, 24);
	CHECK("openat2_create", fd >= 0 && fmode(fd) == (S_IFREG | 0640), "fd %ld", fd);
	RAW1(SYS_close, fd);
	char big[40] = {0};
	struct open_how *h = (struct open_how *)big;
	h->flags = O_RDONLY;
	EXPECT("openat2_larger_zeroed_ok", RAW4(SYS_openat2, dfd, "inner", big, 40) >= 0, 1);
	big[32] = 1;
	EXPECT("openat2_larger_nonzero_e2big", RAW4(SYS_openat2, dfd, "inner", big, 40), -E2BIG);
	RAW1(SYS_close, dfd);

	/* close_range */
	long a1 = op("a", O_RDONLY, 0), a2 = op("a", O_RDONLY, 0), a3 = op("a", O_RDONLY, 0);
	EXPECT("close_range_cloexec", RAW3(SYS_close_range, a2, a3, 4 /* CLOSE_RANGE_CLOEXEC */), 0);
	EXPECT("close_range_cloexec_set", RAW2(SYS_fcntl, a3, F_GETFD), FD_CLOEXEC);
	EXPECT("close_range_cloexec_not_below", RAW2(SYS_fcntl, a1, F_GETFD), 0);
	EXPECT("close_range", RAW3(SYS_close_range, a1, ~0U, 0), 0);
	EXPECT("close_range_closed", RAW2(SYS_fcntl, a2, F_GETFD), -EBADF);
	EXPECT("close_range_inverted_einval", RAW3(SYS_close_range, 10, 5, 0), -EINVAL);
	EXPECT("close_range_bad_flags_einval", RAW3(SYS_close_range, 10, 20, 1), -EINVAL);

	/* O_TMPFILE is allowed to be unsupported (see EXCLUDED). */
	fd = op(".", O_TMPFILE | O_RDWR, 0600);
	CHECK("tmpfile", fd >= 0, "got %ld", fd);
	return 0;
}
