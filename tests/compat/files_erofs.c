/* A read-only mount: reads work, every write is EROFS, and errors that
 * Linux checks first (EEXIST, ENOENT, EBADF, ...) still come first.
 * argv[1] is the fixture directory; its `ro` is read-only. */
#include "compat.h"
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("ro")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	char buf[32];
	long fd = RAW3(SYS_open, "file", O_RDONLY, 0);
	long n = RAW3(SYS_read, fd, buf, sizeof buf);
	CHECK("read", n == 6 && memcmp(buf, "hello\n", 6) == 0, "got %ld", n);
	EXPECT("readlink", RAW3(SYS_readlink, "link", buf, sizeof buf), 4);
	EXPECT("open_rdonly_through_link", open_close("link", O_RDONLY), 0);
	EXPECT("open_wronly", open_close("file", O_WRONLY), -EROFS);
	EXPECT("open_rdwr", open_close("file", O_RDWR), -EROFS);
	EXPECT("open_trunc", open_close("file", O_RDONLY | O_TRUNC), -EROFS);
	EXPECT("open_creat_new", open_close("new", O_CREAT | O_RDWR), -EROFS);
	EXPECT("open_creat_existing_rdonly", open_close("file", O_CREAT | O_RDONLY), 0);
	EXPECT("open_creat_excl_existing", open_close("file", O_CREAT | O_EXCL | O_RDONLY), -EEXIST);
	EXPECT("open_dir", open_close("dir", O_RDONLY | O_DIRECTORY), 0);
	EXPECT("open_missing", open_close("missing", O_RDONLY), -ENOENT);
	EXPECT("creat", RAW2(SYS_creat, "new", 0644), -EROFS);
	EXPECT("mkdir", RAW2(SYS_mkdir, "newdir", 0755), -EROFS);
	EXPECT("mkdir_existing_eexist", RAW2(SYS_mkdir, "dir", 0755), -EEXIST);
	EXPECT("mkdir_missing_parent_enoent", RAW2(SYS_mkdir, "missing/x", 0755), -ENOENT);
	EXPECT("mknod", RAW3(SYS_mknod, "node", S_IFREG | 0644, 0), -EROFS);
	EXPECT("symlink", RAW2(SYS_symlink, "file", "newlink"), -EROFS);
	EXPECT("symlink_existing_eexist", RAW2(SYS_symlink, "file", "link"), -EEXIST);
	EXPECT("link", RAW2(SYS_link, "file", "hard"), -EROFS);
	EXPECT("unlink", RAW1(SYS_unlink, "file"), -EROFS);
	EXPECT("unlink_missing", RAW1(SYS_unlink, "missing"), -EROFS);
	EXPECT("rmdir", RAW1(SYS_rmdir, "dir"), -EROFS);
	EXPECT("rename", RAW2(SYS_rename, "file", "file2"), -EROFS);
	EXPECT("chmod", RAW2(SYS_chmod, "file", 0600), -EROFS);
	EXPECT("chmod_missing_enoent", RAW2(SYS_chmod, "missing", 0600), -ENOENT);
	EXPECT("fchmod", RAW2(SYS_fchmod, fd, 0600), -EROFS);
	EXPECT("chown", RAW3(SYS_chown, "file", 1, 1), -EROFS);
	EXPECT("lchown", RAW3(SYS_lchown, "link", 1, 1), -EROFS);
	EXPECT("fchown", RAW3(SYS_fchown, fd, 1, 1), -EROFS);
	EXPECT("utimensat", RAW4(SYS_utimensat, AT_FDCWD, "file", NULL, 0), -EROFS);
	EXPECT("utimensat_fd", RAW4(SYS_utimensat, fd, NULL, NULL, 0), -EROFS);
	EXPECT("truncate", RAW2(SYS_truncate, "file", 0), -EROFS);
	EXPECT("ftruncate_rdonly_fd_einval", RAW2(SYS_ftruncate, fd, 0), -EINVAL);
	EXPECT("fallocate_rdonly_fd_ebadf", RAW4(SYS_fallocate, fd, 0, 0, 10), -EBADF);
	EXPECT("setxattr", RAW5(SYS_setxattr, "file", "user.x", "1", 1, 0), -EROFS);
	EXPECT("fsetxattr", RAW5(SYS_fsetxattr, fd, "user.x", "1", 1, 0), -EROFS);
	EXPECT("removexattr", RAW2(SYS_removexattr, "file", "user.x"), -EROFS);
	EXPECT("getxattr_missing", RAW4(SYS_getxattr, "file", "user.x", buf, sizeof buf), -ENODATA);
	EXPECT("access_w", RAW2(SYS_access, "file", W_OK), -EROFS);
	EXPECT("access_w_dir", RAW2(SYS_access, "dir", W_OK), -EROFS);
	EXPECT("access_r", RAW2(SYS_access, "file", R_OK), 0);
	EXPECT("access_x_dir", RAW2(SYS_access, "dir", X_OK), 0);
	EXPECT("fsync", RAW1(SYS_fsync, fd), 0);
	EXPECT("write_rdonly_ebadf", RAW3(SYS_write, fd, "x", 1), -EBADF);
	EXPECT("flock", RAW2(SYS_flock, fd, 2 /* LOCK_EX */), 0);
	return 0;
}
