/* stat, lstat, fstat, newfstatat, statx, statfs, fstatfs, readlink,
 * readlinkat, access, faccessat, faccessat2. Device and inode numbers are
 * the sandbox's own and are compared only with each other. argv[1] is the
 * fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

/* <linux/stat.h>'s statx, which musl's headers may lack. */
struct sx_ts {
	long long tv_sec;
	unsigned tv_nsec;
	int pad;
};
struct sx {
	unsigned mask, blksize;
	unsigned long long attributes;
	unsigned nlink, uid, gid;
	unsigned short mode, pad1;
	unsigned long long ino, size, blocks, attributes_mask;
	struct sx_ts atime, btime, ctime, mtime;
	unsigned rdev_major, rdev_minor, dev_major, dev_minor;
	unsigned long long spare[14];
};
#define SX_BASIC 0x7ffU
#define ST_RDONLY 1

static void print_stat(const char *what, const struct stat *s) {
	printf("%s mode=%o nlink=%lu uid=%u gid=%u size=%ld blksize=%ld blocks=%ld rdev=%lu\n", what,
	       (unsigned)s->st_mode, (unsigned long)s->st_nlink, s->st_uid, s->st_gid, (long)s->st_size,
	       (long)s->st_blksize, (long)s->st_blocks, (unsigned long)s->st_rdev);
}

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	umask(022);
	struct stat s, s2;
	char buf[64];
	long fd = RAW3(SYS_open, "f", O_CREAT | O_RDWR, 0640);
	RAW3(SYS_write, fd, "twelve bytes", 12);
	struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
	RAW4(SYS_utimensat, AT_FDCWD, "f", ts, 0);
	EXPECT("stat", RAW2(SYS_stat, "f", &s), 0);
	print_stat("stat f", &s);
	CHECK("stat_times", s.st_atim.tv_sec == 1000000000 && s.st_atim.tv_nsec == 123456789 &&
				    s.st_mtim.tv_sec == 1100000000 && s.st_mtim.tv_nsec == 987654321,
	      "atime %ld.%ld mtime %ld.%ld", (long)s.st_atim.tv_sec, s.st_atim.tv_nsec, (long)s.st_mtim.tv_sec,
	      s.st_mtim.tv_nsec);
	EXPECT("fstat", RAW2(SYS_fstat, fd, &s2), 0);
	CHECK("fstat_matches_stat", s.st_ino == s2.st_ino && s.st_dev == s2.st_dev && s.st_size == s2.st_size,
	      "differs");
	RAW2(SYS_link, "f", "f2");
	RAW2(SYS_stat, "f", &s);
	EXPECT("nlink_after_link", s.st_nlink, 2);
	RAW2(SYS_stat, "f2", &s2);
	CHECK("hard_links_same_inode", s.st_ino == s2.st_ino && s.st_dev == s2.st_dev, "differs");
	RAW2(SYS_stat, ".", &s2);
	CHECK("same_mount_same_dev", s.st_dev == s2.st_dev, "differs");
	mkdir("d", 0755);
	mkdir("d/a", 0755);
	mkdir("d/b", 0700);
	RAW2(SYS_stat, "d", &s);
	print_stat("stat d", &s);
	symlink("f", "lnk");
	EXPECT("lstat", RAW2(SYS_lstat, "lnk", &s), 0);
	print_stat("lstat lnk", &s);
	RAW2(SYS_stat, "lnk", &s);
	print_stat("stat lnk", &s);
	RAW2(SYS_stat, "/", &s);
	EXPECT("root_is_dir", s.st_mode & S_IFMT, S_IFDIR);
	EXPECT("stat_missing", RAW2(SYS_stat, "nope", &s), -ENOENT);
	EXPECT("stat_bad_buf", RAW2(SYS_stat, "f", BAD_PTR), -EFAULT);
	EXPECT("fstat_bad_fd", RAW2(SYS_fstat, 999, &s), -EBADF);

	/* statx */
	struct sx x;
	memset(&x, 0, sizeof x);
	EXPECT("statx", RAW5(SYS_statx, AT_FDCWD, "f", 0, SX_BASIC, &x), 0);
	CHECK("statx_basic_mask", (x.mask & SX_BASIC) == SX_BASIC, "mask %x", x.mask);
	printf("statx f mode=%o nlink=%u uid=%u gid=%u size=%llu blocks=%llu blksize=%u mtime=%lld.%u\n",
	       x.mode, x.nlink, x.uid, x.gid, x.size, x.blocks, x.blksize, x.mtime.tv_sec, x.mtime.tv_nsec);
	RAW2(SYS_stat, "f", &s);
	CHECK("statx_matches_stat", x.ino == s.st_ino && x.size == (unsigned long long)s.st_size, "differs");
	EXPECT("statx_nofollow", RAW5(SYS_statx, AT_FDCWD, "lnk", AT_SYMLINK_NOFOLLOW, SX_BASIC, &x), 0);
	EXPECT("statx_nofollow_mode", x.mode & S_IFMT, S_IFLNK);
	EXPECT("statx_empty_path", RAW5(SYS_statx, fd, "", AT_EMPTY_PATH, SX_BASIC, &x), 0);
	EXPECT("statx_empty_path_mode", x.mode, S_IFREG | 0640);
	EXPECT("statx_reserved_mask_einval", RAW5(SYS_statx, AT_FDCWD, "f", 0, 0x80000000U, &x), -EINVAL);
	EXPECT("statx_bad_sync_type_einval", RAW5(SYS_statx, AT_FDCWD, "f", 0x6000, SX_BASIC, &x), -EINVAL);
	EXPECT("statx_bad_flags_einval", RAW5(SYS_statx, AT_FDCWD, "f", 0x1, SX_BASIC, &x), -EINVAL);
	EXPECT("statx_force_sync", RAW5(SYS_statx, AT_FDCWD, "f", 0x2000, SX_BASIC, &x), 0);
	EXPECT("statx_bad_buf", RAW5(SYS_statx, AT_FDCWD, "f", 0, SX_BASIC, BAD_PTR), -EFAULT);
	EXPECT("statx_missing", RAW5(SYS_statx, AT_FDCWD, "nope", 0, SX_BASIC, &x), -ENOENT);

	/* statfs */
	struct statfs f1, f2;
	EXPECT("statfs", RAW2(SYS_statfs, ".", &f1), 0);
	EXPECT("fstatfs", RAW2(SYS_fstatfs, fd, &f2), 0);
	printf("statfs type=%lx bsize=%ld namelen=%ld rdonly=%d\n", (long)f1.f_type, (long)f1.f_bsize,
	       (long)f1.f_namelen, (int)(f1.f_flags & ST_RDONLY));
	CHECK("fstatfs_matches", f1.f_type == f2.f_type && f1.f_bsize == f2.f_bsize, "differs");
	EXPECT("statfs_ro", RAW2(SYS_statfs, "../ro", &f2), 0);
	EXPECT("statfs_ro_flag", f2.f_flags & ST_RDONLY, ST_RDONLY);
	EXPECT("statfs_missing", RAW2(SYS_statfs, "nope", &f1), -ENOENT);
	EXPECT("statfs_bad_buf", RAW2(SYS_statfs, ".", BAD_PTR), -EFAULT);

	/* readlink */
	memset(buf, 'x', sizeof buf);
	EXPECT("readlink", RAW3(SYS_readlink, "lnk", buf, sizeof buf), 1);
	CHECK("readlink_no_nul", buf[0] == 'f' && buf[1] == 'x', "got %.2s", buf);
	symlink("a-longer-target", "long");
	EXPECT("readlink_truncates", RAW3(SYS_readlink, "long", buf, 4), 4);
	CHECK("readlink_truncated_data", memcmp(buf, "a-lo", 4) == 0, "got %.4s", buf);
	EXPECT("readlink_zero_einval", RAW3(SYS_readlink, "lnk", buf, 0), -EINVAL);
	EXPECT("readlink_negative_einval", RAW3(SYS_readlink, "lnk", buf, -1), -EINVAL);
	EXPECT("readlink_not_link_einval", RAW3(SYS_readlink, "f", buf, sizeof buf), -EINVAL);
	EXPECT("readlink_missing", RAW3(SYS_readlink, "nope", buf, sizeof buf), -ENOENT);
	EXPECT("readlink_bad_buf", RAW3(SYS_readlink, "lnk", BAD_PTR, 10), -EFAULT);
	long lfd = RAW3(SYS_open, "long", O_PATH | O_NOFOLLOW, 0);
	EXPECT("readlinkat_empty_path", RAW4(SYS_readlinkat, lfd, "", buf, sizeof buf), 15);
	EXPECT("readlinkat_empty_path_not_link", RAW4(SYS_readlinkat, fd, "", buf, sizeof buf), -ENOENT);
	long dfd = RAW3(SYS_open, ".", O_RDONLY | O_DIRECTORY, 0);
	EXPECT("readlinkat_dirfd", RAW4(SYS_readlinkat, dfd, "long", buf, sizeof buf), 15);

	/* access */
	long x744 = RAW3(SYS_open, "x744", O_CREAT | O_RDWR, 0744);
	RAW1(SYS_close, x744);
	EXPECT("access_f_ok", RAW2(SYS_access, "f", F_OK), 0);
	EXPECT("access_root_rw", RAW2(SYS_access, "f", R_OK | W_OK), 0);
	EXPECT("access_root_x_needs_a_bit", RAW2(SYS_access, "f", X_OK), -EACCES);
	EXPECT("access_root_x", RAW2(SYS_access, "x744", X_OK), 0);
	EXPECT("access_dir_x", RAW2(SYS_access, "d", X_OK), 0);
	EXPECT("access_missing", RAW2(SYS_access, "nope", F_OK), -ENOENT);
	EXPECT("access_bad_mode", RAW2(SYS_access, "f", 8), -EINVAL);
	symlink("nowhere", "dangling");
	EXPECT("access_dangling_link", RAW2(SYS_access, "dangling", F_OK), -ENOENT);
	EXPECT("faccessat_nofollow", RAW4(SYS_faccessat2, AT_FDCWD, "dangling", F_OK, AT_SYMLINK_NOFOLLOW), 0);
	EXPECT("faccessat_follow", RAW3(SYS_faccessat, AT_FDCWD, "dangling", F_OK), -ENOENT);
	EXPECT("faccessat2_eaccess", RAW4(SYS_faccessat2, AT_FDCWD, "f", R_OK, AT_EACCESS), 0);
	EXPECT("faccessat2_bad_flags", RAW4(SYS_faccessat2, AT_FDCWD, "f", R_OK, 0x1), -EINVAL);
	EXPECT("faccessat2_empty_path", RAW4(SYS_faccessat2, fd, "", R_OK, AT_EMPTY_PATH), 0);
	EXPECT("faccessat_dirfd", RAW3(SYS_faccessat, dfd, "f", R_OK), 0);
	EXPECT("access_ro_write_erofs", RAW2(SYS_access, "../ro/file", W_OK), -EROFS);
	EXPECT("access_ro_read", RAW2(SYS_access, "../ro/file", R_OK), 0);
	return 0;
}
