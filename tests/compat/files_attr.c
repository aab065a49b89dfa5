/* Attributes as root: chmod family, chown family, utimensat/utimes,
 * extended attributes, flock, fcntl record and OFD locks. argv[1] is the
 * fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#define XATTR_CREATE 1
#define XATTR_REPLACE 2

static long st(const char *p, struct stat *s) {
	return RAW4(SYS_newfstatat, AT_FDCWD, p, s, AT_SYMLINK_NOFOLLOW);
}

static long mode_of(const char *p) {
	struct stat s;
	long r = st(p, &s);
	return r < 0 ? r : (long)s.st_mode;
}

static long op(const char *p, long flags) {
	return RAW3(SYS_open, p, flags, 0644);
}

static long lock(long fd, int cmd, short type, long start, long len) {
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return RAW3(SYS_fcntl, fd, cmd, &fl);
}

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	umask(0);
	struct stat s;
	long fd = op("f", O_CREAT | O_RDWR);
	RAW3(SYS_write, fd, "data", 4);
	symlink("f", "lnk");

	/* chmod */
	EXPECT("chmod", RAW2(SYS_chmod, "f", 0600), 0);
	EXPECT("chmod_mode", mode_of("f"), S_IFREG | 0600);
	EXPECT("chmod_setid_bits", RAW2(SYS_chmod, "f", 06755), 0);
	EXPECT("chmod_setid_mode", mode_of("f"), S_IFREG | 06755);
	EXPECT("chmod_high_bits_ignored", RAW2(SYS_chmod, "f", 0170644), 0);
	EXPECT("chmod_high_bits_mode", mode_of("f"), S_IFREG | 0644);
	EXPECT("chmod_follows_link", RAW2(SYS_chmod, "lnk", 0640), 0);
	EXPECT("chmod_through_link_mode", mode_of("f"), S_IFREG | 0640);
	EXPECT("fchmod", RAW2(SYS_fchmod, fd, 0604), 0);
	EXPECT("fchmod_mode", mode_of("f"), S_IFREG | 0604);
	EXPECT("fchmodat", RAW3(SYS_fchmodat, AT_FDCWD, "f", 0644), 0);
	EXPECT("chmod_missing", RAW2(SYS_chmod, "nope", 0644), -ENOENT);
	EXPECT("fchmod_bad_fd", RAW2(SYS_fchmod, 999, 0644), -EBADF);

	/* chown */
	EXPECT("chown", RAW3(SYS_chown, "f", 1000, 2000), 0);
	st("f", &s);
	CHECK("chown_ids", s.st_uid == 1000 && s.st_gid == 2000, "got %u %u", s.st_uid, s.st_gid);
	EXPECT("chown_minus_one_keeps", RAW3(SYS_chown, "f", -1, 3000), 0);
	st("f", &s);
	CHECK("chown_minus_one_ids", s.st_uid == 1000 && s.st_gid == 3000, "got %u %u", s.st_uid, s.st_gid);
	EXPECT("lchown_link", RAW3(SYS_lchown, "lnk", 4000, 4000), 0);
	st("lnk", &s);
	CHECK("lchown_changes_link", s.st_uid == 4000, "got %u", s.st_uid);
	st("f", &s);
	CHECK("lchown_not_target", s.st_uid == 1000, "got %u", s.st_uid);
	EXPECT("fchown", RAW3(SYS_fchown, fd, 0, 0), 0);
	RAW2(SYS_chmod, "f", 06755);
	EXPECT("chown_clears_setid", RAW3(SYS_chown, "f", 0, 0), 0);
	EXPECT("chown_cleared_mode", mode_of("f"), S_IFREG | 0755);
	RAW2(SYS_chmod, "f", 02745);
	RAW3(SYS_chown, "f", 0, 0);
	EXPECT("chown_keeps_setgid_without_group_x", mode_of("f"), S_IFREG | 02745);
	EXPECT("fchownat_nofollow", RAW5(SYS_fchownat, AT_FDCWD, "lnk", 5, 5, AT_SYMLINK_NOFOLLOW), 0);
	EXPECT("fchownat_empty_path", RAW5(SYS_fchownat, fd, "", 0, 0, AT_EMPTY_PATH), 0);
	EXPECT("fchownat_bad_flags", RAW5(SYS_fchownat, AT_FDCWD, "f", 0, 0, 1), -EINVAL);

	/* Times. */
	struct timespec ts[2] = {{1000, 1}, {2000, 2}};
	EXPECT("utimensat", RAW4(SYS_utimensat, AT_FDCWD, "f", ts, 0), 0);
	st("f", &s);
	CHECK("utimensat_set", s.st_atim.tv_sec == 1000 && s.st_atim.tv_nsec == 1 && s.st_mtim.tv_sec == 2000 &&
				       s.st_mtim.tv_nsec == 2,
	      "got %ld %ld", (long)s.st_atim.tv_sec, (long)s.st_mtim.tv_sec);
	struct timespec omit[2] = {{0, UTIME_OMIT}, {3000, 0}};
	EXPECT("utimensat_omit", RAW4(SYS_utimensat, AT_FDCWD, "f", omit, 0), 0);
	st("f", &s);
	CHECK("utimensat_omit_kept", s.st_atim.tv_sec == 1000 && s.st_mtim.tv_sec == 3000, "got %ld %ld",
	      (long)s.st_atim.tv_sec, (long)s.st_mtim.tv_sec);
	struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
	EXPECT("utimensat_now", RAW4(SYS_utimensat, AT_FDCWD, "f", now, 0), 0);
	st("f", &s);
	long t = (long)time(NULL);
	CHECK("utimensat_now_set", s.st_atim.tv_sec >= t - 5 && s.st_atim.tv_sec <= t + 5, "got %ld now %ld",
	      (long)s.st_atim.tv_sec, t);
	EXPECT("utimensat_null_now", RAW4(SYS_utimensat, AT_FDCWD, "f", NULL, 0), 0);
	struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
	EXPECT("utimensat_bad_nsec", RAW4(SYS_utimensat, AT_FDCWD, "f", bad, 0), -EINVAL);
	EXPECT("utimensat_bad_flags", RAW4(SYS_utimensat, AT_FDCWD, "f", ts, 1), -EINVAL);
	EXPECT("utimensat_fd_null_path", RAW4(SYS_utimensat, fd, NULL, ts, 0), 0);
	EXPECT("utimensat_nofollow", RAW4(SYS_utimensat, AT_FDCWD, "lnk", ts, AT_SYMLINK_NOFOLLOW), 0);
	EXPECT("utimensat_bad_ptr", RAW4(SYS_utimensat, AT_FDCWD, "f", BAD_PTR, 0), -EFAULT);
	EXPECT("utimensat_missing", RAW4(SYS_utimensat, AT_FDCWD, "nope", ts, 0), -ENOENT);
	struct timeval tv[2] = {{4000, 5}, {5000, 6}};
	EXPECT("utimes", RAW2(SYS_utimes, "f", tv), 0);
	st("f", &s);
	CHECK("utimes_set", s.st_atim.tv_sec == 4000 && s.st_atim.tv_nsec == 5000 && s.st_mtim.tv_sec == 5000,
	      "got %ld %ld", (long)s.st_atim.tv_sec, s.st_atim.tv_nsec);
	struct timeval badtv[2] = {{0, 1000000}, {0, 0}};
	EXPECT("utimes_bad_usec", RAW2(SYS_utimes, "f", badtv), -EINVAL);

	/* Extended attributes. */
	char v[64];
	EXPECT("setxattr", RAW5(SYS_setxattr, "f", "user.a", "one", 3, 0), 0);
	EXPECT("getxattr_size", RAW4(SYS_getxattr, "f", "user.a", NULL, 0), 3);
	EXPECT("getxattr", RAW4(SYS_getxattr, "f", "user.a", v, sizeof v), 3);
	CHECK("getxattr_value", memcmp(v, "one", 3) == 0, "got %.3s", v);
	EXPECT("getxattr_erange", RAW4(SYS_getxattr, "f", "user.a", v, 2), -ERANGE);
	EXPECT("getxattr_missing", RAW4(SYS_getxattr, "f", "user.none", v, sizeof v), -ENODATA);
	EXPECT("setxattr_create_exists", RAW5(SYS_setxattr, "f", "user.a", "x", 1, XATTR_CREATE), -EEXIST);
	EXPECT("setxattr_replace_missing", RAW5(SYS_setxattr, "f", "user.b", "x", 1, XATTR_REPLACE), -ENODATA);
	EXPECT("setxattr_replace", RAW5(SYS_setxattr, "f", "user.a", "two!", 4, XATTR_REPLACE), 0);
	EXPECT("setxattr_bad_flags", RAW5(SYS_setxattr, "f", "user.a", "x", 1, 4), -EINVAL);
	EXPECT("setxattr_empty_value", RAW5(SYS_setxattr, "f", "user.empty", "", 0, 0), 0);
	EXPECT("getxattr_empty_value", RAW4(SYS_getxattr, "f", "user.empty", v, sizeof v), 0);
	EXPECT("fsetxattr", RAW5(SYS_fsetxattr, fd, "user.c", "3", 1, 0), 0);
	EXPECT("fgetxattr", RAW4(SYS_fgetxattr, fd, "user.c", v, sizeof v), 1);
	long n = RAW3(SYS_listxattr, "f", v, sizeof v);
	CHECK("listxattr", n == 25 && memmem(v, n, "user.a\0", 7) && memmem(v, n, "user.c\0", 7) &&
				   memmem(v, n, "user.empty\0", 11),
	      "got %ld", n);
	EXPECT("listxattr_size", RAW3(SYS_listxattr, "f", NULL, 0), 25);
	EXPECT("listxattr_erange", RAW3(SYS_listxattr, "f", v, 5), -ERANGE);
	EXPECT("flistxattr", RAW3(SYS_flistxattr, fd, v, sizeof v), 25);
	EXPECT("removexattr", RAW2(SYS_removexattr, "f", "user.c"), 0);
	EXPECT("removexattr_missing", RAW2(SYS_removexattr, "f", "user.c"), -ENODATA);
	EXPECT("fremovexattr", RAW2(SYS_fremovexattr, fd, "user.empty"), 0);
	EXPECT("listxattr_after_remove", RAW3(SYS_listxattr, "f", v, sizeof v), 7);
	EXPECT("xattr_unknown_namespace", RAW5(SYS_setxattr, "f", "foo.a", "x", 1, 0), -EOPNOTSUPP);
	EXPECT("xattr_empty_name", RAW5(SYS_setxattr, "f", "", "x", 1, 0), -ERANGE);
	memset(v, 'n', sizeof v);
	char longname[300];
	memcpy(longname, "user.", 5);
	memset(longname + 5, 'n', 290);
	longname[295] = 0;
	EXPECT("xattr_name_too_long", RAW4(SYS_getxattr, "f", longname, v, sizeof v), -ERANGE);
	EXPECT("lsetxattr_user_on_link_eperm", RAW5(SYS_lsetxattr, "lnk", "user.a", "x", 1, 0), -EPERM);
	EXPECT("lgetxattr_user_on_link", RAW4(SYS_lgetxattr, "lnk", "user.a", v, sizeof v), -ENODATA);
	EXPECT("llistxattr_link", RAW3(SYS_llistxattr, "lnk", v, sizeof v), 0);
	EXPECT("lremovexattr_link", RAW2(SYS_lremovexattr, "lnk", "user.a"), -EPERM);
	EXPECT("getxattr_follows_link", RAW4(SYS_getxattr, "lnk", "user.a", v, sizeof v), 4);
	EXPECT("trusted_set_as_root", RAW5(SYS_setxattr, "f", "trusted.t", "tt", 2, 0), 0);
	EXPECT("trusted_get_as_root", RAW4(SYS_getxattr, "f", "trusted.t", v, sizeof v), 2);
	EXPECT("getxattr_bad_buf", RAW4(SYS_getxattr, "f", "user.a", BAD_PTR, 10), -EFAULT);
	EXPECT("fgetxattr_bad_fd", RAW4(SYS_fgetxattr, 999, "user.a", v, sizeof v), -EBADF);

	/* flock */
	long f1 = op("f", O_RDWR), f2 = op("f", O_RDONLY);
	EXPECT("flock_ex", RAW2(SYS_flock, f1, LOCK_EX), 0);
	EXPECT("flock_conflict", RAW2(SYS_flock, f2, LOCK_SH | LOCK_NB), -EWOULDBLOCK);
	EXPECT("flock_same_description_ok", RAW2(SYS_flock, f1, LOCK_SH | LOCK_NB), 0);
	EXPECT("flock_shared_both", RAW2(SYS_flock, f2, LOCK_SH | LOCK_NB), 0);
	EXPECT("flock_upgrade_blocked", RAW2(SYS_flock, f1, LOCK_EX | LOCK_NB), -EWOULDBLOCK);
	EXPECT("flock_unlock", RAW2(SYS_flock, f2, LOCK_UN), 0);
	EXPECT("flock_upgrade", RAW2(SYS_flock, f1, LOCK_EX | LOCK_NB), 0);
	long dup1 = RAW1(SYS_dup, f1);
	RAW1(SYS_close, f1);
	EXPECT("flock_kept_by_dup", RAW2(SYS_flock, f2, LOCK_SH | LOCK_NB), -EWOULDBLOCK);
	RAW1(SYS_close, dup1);
	EXPECT("flock_released_on_last_close", RAW2(SYS_flock, f2, LOCK_EX | LOCK_NB), 0);
	EXPECT("flock_bad_op", RAW2(SYS_flock, f2, 0), -EINVAL);
	EXPECT("flock_bad_fd", RAW2(SYS_flock, 999, LOCK_EX), -EBADF);
	RAW1(SYS_close, f2);

	/* Record locks (per process) and OFD locks (per open file). */
	f1 = op("f", O_RDWR);
	f2 = op("f", O_RDWR);
	long rdonly = op("f", O_RDONLY);
	EXPECT("setlk_write", lock(f1, F_SETLK, F_WRLCK, 0, 10), 0);
	struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 5};
	EXPECT("getlk_own_no_conflict", RAW3(SYS_fcntl, f2, F_GETLK, &q), 0);
	EXPECT("getlk_own_unlck", q.l_type, F_UNLCK);
	EXPECT("setlk_same_process_other_fd", lock(f2, F_SETLK, F_RDLCK, 0, 10), 0);
	struct flock oq = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 5};
	EXPECT("ofd_getlk_sees_process_lock", RAW3(SYS_fcntl, f2, F_OFD_GETLK, &oq), 0);
	CHECK("ofd_getlk_conflict", oq.l_type == F_RDLCK && oq.l_pid == getpid() && oq.l_start == 0 &&
					    oq.l_len == 10,
	      "type %d pid %d (self %d) start %ld len %ld", oq.l_type, oq.l_pid, getpid(), (long)oq.l_start,
	      (long)oq.l_len);
	EXPECT("ofd_setlk_conflict", lock(f2, F_OFD_SETLK, F_WRLCK, 5, 1), -EAGAIN);
	EXPECT("ofd_setlk_free_range", lock(f2, F_OFD_SETLK, F_WRLCK, 20, 5), 0);
	EXPECT("ofd_setlk_other_ofd_conflict", lock(f1, F_OFD_SETLK, F_RDLCK, 22, 1), -EAGAIN);
	oq = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 21, .l_len = 1};
	RAW3(SYS_fcntl, f1, F_OFD_GETLK, &oq);
	CHECK("ofd_getlk_ofd_owner_pid", oq.l_type == F_WRLCK && oq.l_pid == -1, "type %d pid %d", oq.l_type,
	      oq.l_pid);
	struct flock withpid = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 40, .l_len = 1, .l_pid = 1};
	EXPECT("ofd_setlk_nonzero_pid_einval", RAW3(SYS_fcntl, f2, F_OFD_SETLK, &withpid), -EINVAL);
	EXPECT("setlk_write_on_rdonly_ebadf", lock(rdonly, F_SETLK, F_WRLCK, 0, 1), -EBADF);
	EXPECT("setlk_bad_type", lock(f1, F_SETLK, 7, 0, 1), -EINVAL);
	EXPECT("setlk_negative_start", lock(f1, F_SETLK, F_WRLCK, -1, 1), -EINVAL);
	EXPECT("setlk_negative_len", lock(f1, F_SETLK, F_WRLCK, 50, -10), 0);
	struct flock end = {.l_type = F_WRLCK, .l_whence = SEEK_END, .l_start = 100, .l_len = 0};
	EXPECT("setlk_seek_end", RAW3(SYS_fcntl, f1, F_SETLK, &end), 0);
	EXPECT("setlk_bad_ptr", RAW3(SYS_fcntl, f1, F_SETLK, BAD_PTR), -EFAULT);
	EXPECT("unlock", lock(f1, F_SETLK, F_UNLCK, 0, 0), 0);
	RAW1(SYS_close, rdonly);
	EXPECT("setlk_after_close_of_other_fd", lock(f2, F_OFD_SETLK, F_WRLCK, 0, 10), 0);

	/* A process's record locks go when any of its descriptors for the
	 * file is closed: by dup2 over it, or by close_range. */
	long g1 = op("g", O_CREAT | O_RDWR), g2 = op("g", O_RDWR), spare = op("f", O_RDONLY);
	struct flock probe;
	EXPECT("setlk_g", lock(g1, F_SETLK, F_WRLCK, 0, 10), 0);
	probe = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	RAW3(SYS_fcntl, g2, F_OFD_GETLK, &probe);
	EXPECT("setlk_g_held", probe.l_type, F_WRLCK);
	RAW2(SYS_dup2, spare, g2);
	probe = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	long g3 = op("g", O_RDWR);
	RAW3(SYS_fcntl, g3, F_OFD_GETLK, &probe);
	EXPECT("dup2_over_descriptor_releases_locks", probe.l_type, F_UNLCK);
	EXPECT("setlk_g_again", lock(g1, F_SETLK, F_WRLCK, 0, 10), 0);
	RAW3(SYS_close_range, g1, g1, 0);
	probe = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	RAW3(SYS_fcntl, g3, F_OFD_GETLK, &probe);
	EXPECT("close_range_releases_locks", probe.l_type, F_UNLCK);
	return 0;
}
