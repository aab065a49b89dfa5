/* Mounts made inside the sandbox (argv[1] is the file fixture; natively
 * the runner's throwaway mount namespace): tmpfs with options, proc,
 * binds, remounting read-only, propagation changes, umount2 and its
 * errors, what /proc/self/mountinfo shows, and chroot in a child. */
#include "compat.h"
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

static char base[512];

static const char *at(const char *rel) {
	static char buf[4][600];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", base, rel);
	return buf[i];
}

/* How many mountinfo lines have `path` as their mount point. */
static int mounted_at(const char *path) {
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024], point[600];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %*s %*s %*s %599s", point) == 1 && strcmp(point, path) == 0)
			n++;
	if (f)
		fclose(f);
	return n;
}

static long rc(long r) {
	return r == -1 ? -errno : r;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	snprintf(base, sizeof base, "%s", argv[1]);
	struct stat st;
	struct statfs sf;
	char dir[600];
	snprintf(dir, sizeof dir, "%s", at("rw/rootdir"));

	EXPECT("tmpfs", rc(mount("none", dir, "tmpfs", 0, "size=1m,mode=700")), 0);
	stat(dir, &st);
	EXPECT("tmpfs_mode_option", st.st_mode & 07777, 0700);
	statfs(dir, &sf);
	CHECK("tmpfs_statfs_type", sf.f_type == 0x01021994, "%lx", (long)sf.f_type);
	EXPECT("tmpfs_in_mountinfo", mounted_at(dir), 1);
	int fd = open(at("rw/rootdir/f"), O_CREAT | O_WRONLY, 0644);
	CHECK("tmpfs_create", fd >= 0, "errno %d", errno);
	close(fd);
	/* size= is enforced: a write past it is short, then ENOSPC; freeing
	 * (truncation, removal) gives the space back. */
	fd = open(at("rw/rootdir/big"), O_CREAT | O_WRONLY, 0644);
	static char chunk[768 << 10];
	memset(chunk, 'x', sizeof chunk);
	EXPECT("tmpfs_size_first_write", write(fd, chunk, sizeof chunk), sizeof chunk);
	EXPECT("tmpfs_size_short_write", write(fd, chunk, sizeof chunk), (1 << 20) - sizeof chunk);
	EXPECT("tmpfs_size_enospc", rc(write(fd, chunk, 1)), -ENOSPC);
	statfs(dir, &sf);
	EXPECT("tmpfs_size_statfs_full", sf.f_bfree, 0);
	EXPECT("tmpfs_size_truncate_frees", rc(ftruncate(fd, 4096)), 0);
	statfs(dir, &sf);
	EXPECT("tmpfs_size_statfs_after_truncate", sf.f_bfree, 255);
	EXPECT("tmpfs_size_write_after_truncate", rc(pwrite(fd, chunk, 8192, 4096)), 8192);
	close(fd);
	EXPECT("tmpfs_size_unlink", rc(unlink(at("rw/rootdir/big"))), 0);
	statfs(dir, &sf);
	EXPECT("tmpfs_size_statfs_after_unlink", sf.f_bfree, 256);
	EXPECT("umount_busy_cwd_free", rc(umount2(dir, 0)), 0);
	EXPECT("tmpfs_gone_after_umount", mounted_at(dir), 0);
	EXPECT("tmpfs_file_gone", rc(stat(at("rw/rootdir/f"), &st)), -ENOENT);
	stat(dir, &st);
	EXPECT("mode_back_after_umount", st.st_mode & 07777, 0755);

	EXPECT("unknown_type_enodev", rc(mount("none", dir, "nosuchfs", 0, NULL)), -ENODEV);
	EXPECT("missing_target_enoent", rc(mount("none", at("rw/missing"), "tmpfs", 0, NULL)), -ENOENT);
	EXPECT("umount_not_mounted_einval", rc(umount2(dir, 0)), -EINVAL);
	EXPECT("umount_bad_flags_einval", rc(umount2(dir, 0x100)), -EINVAL);
	EXPECT("umount_missing_enoent", rc(umount2(at("rw/missing"), 0)), -ENOENT);
	EXPECT("tmpfs_bad_option_einval", rc(mount("none", dir, "tmpfs", 0, "bogus=1")), -EINVAL);

	/* Bind mounts. */
	EXPECT("bind", rc(mount(at("ro/dir"), at("rw/mine"), NULL, MS_BIND, NULL)), 0);
	EXPECT("bind_hides_contents", rc(stat(at("rw/mine/minefile"), &st)), -ENOENT);
	EXPECT("bind_in_mountinfo", mounted_at(at("rw/mine")), 1);
	EXPECT("bind_remount_ro", rc(mount(NULL, at("rw/mine"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)), 0);
	statfs(at("rw/mine"), &sf);
	CHECK("remounted_ro_flag", sf.f_flags & 1 /* ST_RDONLY */, "flags %lx", (long)sf.f_flags);
	EXPECT("umount_bind", rc(umount2(at("rw/mine"), 0)), 0);
	EXPECT("bind_gone", rc(stat(at("rw/mine/minefile"), &st)), 0);
	EXPECT("bind_missing_source_enoent", rc(mount(at("rw/missing"), dir, NULL, MS_BIND, NULL)), -ENOENT);

	/* Remounting a tmpfs read-only, then writable again. */
	mount("none", dir, "tmpfs", 0, NULL);
	EXPECT("remount_ro", rc(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL)), 0);
	EXPECT("write_after_remount_erofs", rc(open(at("rw/rootdir/g"), O_CREAT | O_WRONLY, 0644)), -EROFS);
	EXPECT("remount_rw", rc(mount(NULL, dir, NULL, MS_REMOUNT, NULL)), 0);
	fd = open(at("rw/rootdir/g"), O_CREAT | O_WRONLY, 0644);
	CHECK("write_after_remount_rw", fd >= 0, "errno %d", errno);
	close(fd);
	EXPECT("make_private", rc(mount(NULL, dir, NULL, MS_PRIVATE, NULL)), 0);
	EXPECT("make_rslave_root", rc(mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL)), 0);
	EXPECT("umount_detach", rc(umount2(dir, MNT_DETACH)), 0);

	/* proc. */
	EXPECT("proc", rc(mount("proc", dir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)), 0);
	EXPECT("proc_has_self", rc(stat(at("rw/rootdir/self/stat"), &st)), 0);
	statfs(dir, &sf);
	CHECK("proc_statfs_type", sf.f_type == 0x9fa0, "%lx", (long)sf.f_type);
	EXPECT("umount_proc", rc(umount2(dir, 0)), 0);

	/* chroot, in a child. */
	pid_t c = fork();
	if (c == 0) {
		if (chroot(at("rw")) != 0)
			_exit(10);
		if (access("/pubfile", R_OK) != 0)
			_exit(11);
		if (access(at("rw/pubfile"), F_OK) == 0)
			_exit(12);
		if (chdir("/") != 0 || access("mine/minefile", F_OK) != 0)
			_exit(13);
		_exit(0);
	}
	int s = 0;
	waitpid(c, &s, 0);
	CHECK("chroot", WIFEXITED(s) && WEXITSTATUS(s) == 0, "status %x", s);
	EXPECT("chroot_file_enotdir", rc(chroot(at("rw/pubfile"))), -ENOTDIR);
	EXPECT("chroot_missing_enoent", rc(chroot(at("rw/missing"))), -ENOENT);
	return 0;
}
