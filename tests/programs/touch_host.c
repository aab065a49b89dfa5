/* Tries, with raw system calls, to change the host directory argv[1]:
 * create, remove, rename, chmod, truncate, link. Prints nothing about the
 * results: the test checks the host directory afterwards. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static char buf[4096];

static const char *at(const char *dir, const char *name) {
	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *d = argv[1];
	char other[4096];
	syscall(SYS_mkdir, at(d, "newdir"), 0755);
	syscall(SYS_open, at(d, "created"), O_CREAT | O_WRONLY, 0644);
	syscall(SYS_openat, AT_FDCWD, at(d, "created-at"), O_CREAT | O_WRONLY, 0644);
	syscall(SYS_creat, at(d, "creat"), 0644);
	syscall(SYS_mknod, at(d, "fifo"), 0010644, 0);
	syscall(SYS_symlink, "/etc/passwd", at(d, "symlink"));
	snprintf(other, sizeof(other), "%s/existing", d);
	syscall(SYS_link, other, at(d, "hardlink"));
	syscall(SYS_rename, other, at(d, "renamed"));
	syscall(SYS_truncate, other, 0);
	syscall(SYS_chmod, other, 0777);
	syscall(SYS_unlink, other);
	syscall(SYS_rmdir, at(d, "existingdir"));
	long fd = syscall(SYS_open, other, O_WRONLY | O_APPEND);
	if (fd >= 0)
		syscall(SYS_write, fd, "changed", 7);
	printf("done\n");
	return 0;
}
