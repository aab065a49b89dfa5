/* Permissions as an unprivileged user (uid and gid 65534, no capabilities):
 * the fixture's root-owned files and directories (see tests/compat.rs).
 * argv[1] is the fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	umask(022);
	struct stat s;
	char v[16];
	CHECK("unprivileged", getuid() == 65534 && geteuid() == 65534 && getgid() == 65534, "uid %d", getuid());

	/* Files. */
	EXPECT("open_0600_root_file_eacces", open_close("rootfile", O_RDONLY), -EACCES);
	EXPECT("open_0644_read", open_close("pubfile", O_RDONLY), 0);
	EXPECT("open_0644_write_eacces", open_close("pubfile", O_WRONLY), -EACCES);
	EXPECT("open_0644_trunc_eacces", open_close("pubfile", O_RDONLY | O_TRUNC), -EACCES);
	EXPECT("open_path_needs_no_permission", open_close("rootfile", O_PATH), 0);
	EXPECT("truncate_eacces", RAW2(SYS_truncate, "pubfile", 0), -EACCES);
	EXPECT("access_read_denied", RAW2(SYS_access, "rootfile", R_OK), -EACCES);
	EXPECT("access_read", RAW2(SYS_access, "pubfile", R_OK), 0);
	EXPECT("access_write_denied", RAW2(SYS_access, "pubfile", W_OK), -EACCES);
	EXPECT("access_exists", RAW2(SYS_access, "rootfile", F_OK), 0);
	EXPECT("faccessat2_eaccess_denied", RAW4(SYS_faccessat2, AT_FDCWD, "rootfile", R_OK, AT_EACCESS), -EACCES);
	EXPECT("stat_without_read", RAW2(SYS_stat, "rootfile", &s), 0);

	/* Directories. */
	EXPECT("create_in_nowrite_eacces", open_close("nowrite/x", O_CREAT | O_RDWR), -EACCES);
	EXPECT("mkdir_in_nowrite_eacces", RAW2(SYS_mkdir, "nowrite/d", 0755), -EACCES);
	EXPECT("open_existing_in_nowrite_creat", open_close("pubfile", O_CREAT | O_RDONLY), 0);
	EXPECT("walk_without_search_eacces", RAW2(SYS_stat, "noexec/f", &s), -EACCES);
	EXPECT("list_without_search", open_close("noexec", O_RDONLY | O_DIRECTORY), 0);
	EXPECT("chdir_without_search_eacces", RAW1(SYS_chdir, "noexec"), -EACCES);
	EXPECT("create_in_world_writable", open_close("mine-new", O_CREAT | O_RDWR), 0);
	RAW2(SYS_stat, "mine-new", &s);
	CHECK("created_owner", s.st_uid == 65534 && s.st_gid == 65534 && s.st_mode == (S_IFREG | 0644),
	      "got %u %u %o", s.st_uid, s.st_gid, (unsigned)s.st_mode);
	EXPECT("mkdir_own", RAW2(SYS_mkdir, "mine/sub", 0755), 0);
	EXPECT("unlink_in_nowrite_eacces", RAW1(SYS_unlink, "nowrite/f"), -EACCES);
	EXPECT("rename_out_of_nowrite_eacces", RAW2(SYS_rename, "nowrite/f", "stolen"), -EACCES);

	/* The sticky directory. */
	EXPECT("sticky_unlink_other_eperm", RAW1(SYS_unlink, "sticky/rootowned"), -EPERM);
	EXPECT("sticky_rename_other_eperm", RAW2(SYS_rename, "sticky/rootowned", "sticky/x"), -EPERM);
	EXPECT("sticky_write_other_file", open_close("sticky/rootowned", O_WRONLY), 0);
	EXPECT("sticky_create_own", open_close("sticky/own", O_CREAT | O_RDWR), 0);
	EXPECT("sticky_unlink_own", RAW1(SYS_unlink, "sticky/own"), 0);

	/* Ownership and modes. */
	EXPECT("chmod_other_eperm", RAW2(SYS_chmod, "pubfile", 0666), -EPERM);
	EXPECT("chmod_own", RAW2(SYS_chmod, "mine/minefile", 0600), 0);
	EXPECT("chown_own_to_root_eperm", RAW3(SYS_chown, "mine/minefile", 0, -1), -EPERM);
	EXPECT("chown_own_group_not_member_eperm", RAW3(SYS_chown, "mine/minefile", -1, 0), -EPERM);
	EXPECT("chown_own_noop", RAW3(SYS_chown, "mine/minefile", -1, -1), 0);
	EXPECT("chown_own_same_ids", RAW3(SYS_chown, "mine/minefile", 65534, 65534), 0);
	EXPECT("chown_other_eperm", RAW3(SYS_chown, "pubfile", 65534, -1), -EPERM);
	struct timespec ts[2] = {{1000, 0}, {2000, 0}};
	EXPECT("utimensat_other_explicit_eperm", RAW4(SYS_utimensat, AT_FDCWD, "pubfile", ts, 0), -EPERM);
	EXPECT("utimensat_other_now_eacces", RAW4(SYS_utimensat, AT_FDCWD, "pubfile", NULL, 0), -EACCES);
	EXPECT("utimensat_writable_other_now", RAW4(SYS_utimensat, AT_FDCWD, "sticky/rootowned", NULL, 0), 0);
	EXPECT("utimensat_own", RAW4(SYS_utimensat, AT_FDCWD, "mine/minefile", ts, 0), 0);
	EXPECT("chmod_setgid_own_group", RAW2(SYS_chmod, "mine/minefile", 02755), 0);
	RAW2(SYS_stat, "mine/minefile", &s);
	EXPECT("chmod_setgid_kept", s.st_mode, S_IFREG | 02755);

	/* Extended attributes. */
	EXPECT("setxattr_other_eacces", RAW5(SYS_setxattr, "pubfile", "user.x", "1", 1, 0), -EACCES);
	EXPECT("setxattr_own", RAW5(SYS_setxattr, "mine/minefile", "user.x", "1", 1, 0), 0);
	EXPECT("getxattr_own", RAW4(SYS_getxattr, "mine/minefile", "user.x", v, sizeof v), 1);
	EXPECT("getxattr_unreadable_eacces", RAW4(SYS_getxattr, "rootfile", "user.x", v, sizeof v), -EACCES);
	EXPECT("trusted_set_eperm", RAW5(SYS_setxattr, "mine/minefile", "trusted.x", "1", 1, 0), -EPERM);
	EXPECT("trusted_get_hidden", RAW4(SYS_getxattr, "mine/minefile", "trusted.x", v, sizeof v), -ENODATA);

	/* A set-group-id directory of a group we are not in: new files take
	 * its group, and lose a group-executable set-group-id bit. */
	long fd = RAW3(SYS_open, "sgid/x", O_CREAT | O_RDWR, 02775);
	RAW1(SYS_close, fd);
	RAW2(SYS_stat, "sgid/x", &s);
	CHECK("sgid_dir_new_file", fd >= 0 && s.st_gid == 0 && s.st_mode == (S_IFREG | 0755), "fd %ld gid %u mode %o",
	      fd, s.st_gid, (unsigned)s.st_mode);
	EXPECT("sgid_dir_mkdir", RAW2(SYS_mkdir, "sgid/d", 02755), 0);
	RAW2(SYS_stat, "sgid/d", &s);
	CHECK("sgid_dir_new_dir_keeps_bit", s.st_gid == 0 && (s.st_mode & 02000), "gid %u mode %o", s.st_gid,
	      (unsigned)s.st_mode);

	/* A directory changing parent must be writable (its ".."). */
	EXPECT("rename_unwritable_dir_to_new_parent", RAW2(SYS_rename, "rootdir", "mine/rootdir"), -EACCES);
	EXPECT("rename_unwritable_dir_same_parent", RAW2(SYS_rename, "rootdir", "rootdir2"), 0);

	/* Removing what is not ours in a directory that is not ours. */
	EXPECT("rmdir_not_empty", RAW1(SYS_rmdir, "nowrite"), -ENOTEMPTY);
	/* fs.protected_hardlinks (on by default): no links to files one could
	 * not write. */
	EXPECT("link_other_file_protected_eperm", RAW2(SYS_link, "pubfile", "pub-link"), -EPERM);
	EXPECT("link_writable_other_file", RAW2(SYS_link, "sticky/rootowned", "ro-link"), 0);
	EXPECT("link_own_file", RAW2(SYS_link, "mine-new", "mine-link"), 0);
	/* Mounts and names need privileges the caller does not have. */
	EXPECT("mount_eperm", RAW5(SYS_mount, "none", argv[1], "tmpfs", 0, 0), -EPERM);
	EXPECT("umount_eperm", RAW2(SYS_umount2, argv[1], 0), -EPERM);
	EXPECT("chroot_eperm", RAW1(SYS_chroot, argv[1]), -EPERM);
	EXPECT("sethostname_eperm", RAW2(SYS_sethostname, "x", 1), -EPERM);
	return 0;
}
