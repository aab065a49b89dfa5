/* memfd_create: argument checks, the file's identity (fstat, the
 * /proc/self/fd link, /proc/self/maps), reads, writes, truncation,
 * mappings shared with a child, SIGBUS past the end, and the seals
 * (F_ADD_SEALS/F_GET_SEALS: shrink, grow, write, future write, seal,
 * EBUSY while writably mapped). */
#include "compat.h"
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif
#define SEAL_SEAL 1
#define SEAL_SHRINK 2
#define SEAL_GROW 4
#define SEAL_WRITE 8
#define SEAL_FUTURE_WRITE 0x10
#define MFD_CLOEXEC_ 1
#define MFD_ALLOW_SEALING_ 2
#define MFD_NOEXEC_SEAL_ 8
#define MFD_EXEC_ 0x10

static int memfd(const char *name, unsigned flags) {
	return (int)RAW2(SYS_memfd_create, name, flags);
}

static sigjmp_buf jb;
static volatile int got_sig;
static void on_sig(int s) {
	got_sig = s;
	siglongjmp(jb, 1);
}

static void args(void) {
	EXPECT("unknown_flag_einval", memfd("x", 0x100), -EINVAL);
	EXPECT("exec_and_noexec_einval", memfd("x", MFD_EXEC_ | MFD_NOEXEC_SEAL_), -EINVAL);
	EXPECT("bad_name_efault", RAW2(SYS_memfd_create, 8, 0), -EFAULT);
	char name[300];
	memset(name, 'n', sizeof name);
	name[250] = 0;
	EXPECT("name_250_einval", memfd(name, 0), -EINVAL);
	name[249] = 0;
	int fd = memfd(name, 0);
	CHECK("name_249_ok", fd >= 0, "fd %d", fd);
	close(fd);
	fd = memfd("", 0);
	CHECK("empty_name_ok", fd >= 0, "fd %d", fd);
	close(fd);
	fd = memfd("c", MFD_CLOEXEC_);
	CHECK("cloexec", fd >= 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC, "fd %d", fd);
	close(fd);
	fd = memfd("c", 0);
	CHECK("no_cloexec", fd >= 0 && fcntl(fd, F_GETFD) == 0, "fd %d", fd);
	EXPECT("getfl_rdwr_largefile", fcntl(fd, F_GETFL), O_RDWR | 0100000);
	close(fd);
}

static void identity(void) {
	int fd = memfd("ident", 0);
	struct stat st;
	fstat(fd, &st);
	CHECK("fstat_regular", S_ISREG(st.st_mode), "mode %o", st.st_mode);
	EXPECT("fstat_mode", st.st_mode & 07777, 0777);
	EXPECT("fstat_nlink_unlinked", st.st_nlink, 0);
	EXPECT("fstat_size_zero", st.st_size, 0);
	CHECK("fstat_owner", st.st_uid == geteuid() && st.st_gid == getegid(), "%d:%d", st.st_uid, st.st_gid);
	char path[64], link[128] = {0};
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	long n = readlink(path, link, sizeof link - 1);
	CHECK("proc_fd_link", n > 0 && strcmp(link, "/memfd:ident (deleted)") == 0, "%s", link);
	struct stat st2;
	int fd2 = memfd("ident", 0);
	fstat(fd2, &st2);
	CHECK("distinct_inodes", st.st_ino != st2.st_ino && st.st_dev == st2.st_dev, "ino %lu %lu",
	      (unsigned long)st.st_ino, (unsigned long)st2.st_ino);
	close(fd2);
	ftruncate(fd, 4096);
	char *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	while (maps && fgets(line, sizeof line, maps))
		if (strtoul(line, NULL, 16) == (unsigned long)m && strstr(line, "/memfd:ident (deleted)"))
			found = 1;
	if (maps)
		fclose(maps);
	CHECK("proc_maps_name", found, "not found");
	munmap(m, 4096);
	st.st_mode = 0;
	fd2 = memfd("ns", MFD_NOEXEC_SEAL_);
	fstat(fd2, &st);
	EXPECT("noexec_seal_mode", st.st_mode & 07777, 0666);
	close(fd2);
	close(fd);
}

static void data(void) {
	int fd = memfd("data", 0);
	EXPECT("write", write(fd, "hello world", 11), 11);
	EXPECT("lseek_cur", lseek(fd, 0, SEEK_CUR), 11);
	EXPECT("lseek_end", lseek(fd, 0, SEEK_END), 11);
	char buf[32] = {0};
	EXPECT("pread", pread(fd, buf, 5, 6), 5);
	CHECK("pread_data", memcmp(buf, "world", 5) == 0, "%s", buf);
	lseek(fd, 0, SEEK_SET);
	memset(buf, 0, sizeof buf);
	EXPECT("read", read(fd, buf, sizeof buf), 11);
	EXPECT("read_eof", read(fd, buf, sizeof buf), 0);
	EXPECT("ftruncate_grow", ftruncate(fd, 8192), 0);
	struct stat st;
	fstat(fd, &st);
	EXPECT("size_after_grow", st.st_size, 8192);
	memset(buf, 1, sizeof buf);
	EXPECT("pread_hole", pread(fd, buf, 4, 100), 4);
	CHECK("hole_zero", buf[0] == 0 && buf[3] == 0, "%d", buf[0]);
	EXPECT("ftruncate_shrink", ftruncate(fd, 3), 0);
	EXPECT("pread_after_shrink", pread(fd, buf, 32, 0), 3);
	EXPECT("ftruncate_negative_einval", RAW2(SYS_ftruncate, fd, -1), -EINVAL);
	EXPECT("fsync", fsync(fd), 0);
	EXPECT("fallocate", RAW4(SYS_fallocate, fd, 0, 0, 16384), 0);
	fstat(fd, &st);
	EXPECT("size_after_fallocate", st.st_size, 16384);
	close(fd);
}

static void mappings(void) {
	int fd = memfd("map", 0);
	ftruncate(fd, 4096);
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK("mmap_shared", m != MAP_FAILED, "errno %d", errno);
	pid_t c = fork();
	if (c == 0) {
		strcpy(m, "from the child");
		_exit(0);
	}
	int s;
	waitpid(c, &s, 0);
	char buf[32] = {0};
	pread(fd, buf, 14, 0);
	CHECK("child_write_seen_by_read", strcmp(buf, "from the child") == 0, "%s", buf);
	pwrite(fd, "parent", 6, 0);
	CHECK("write_seen_in_mapping", memcmp(m, "parent", 6) == 0, "%.6s", m);
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	p[0] = 'P';
	CHECK("private_copy", m[0] == 'p' && p[0] == 'P', "%c %c", m[0], p[0]);
	munmap(p, 4096);
	/* A second page past the end of the file: SIGBUS. */
	char *two = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_sig;
	sigaction(SIGBUS, &sa, &old);
	got_sig = 0;
	if (sigsetjmp(jb, 1) == 0) {
		volatile char x = two[4096];
		(void)x;
	}
	sigaction(SIGBUS, &old, NULL);
	EXPECT("past_end_sigbus", got_sig, SIGBUS);
	munmap(two, 8192);
	munmap(m, 4096);
	close(fd);
}

static void seals(void) {
	int fd = memfd("noseal", 0);
	EXPECT("no_sealing_get_seals", fcntl(fd, F_GET_SEALS), SEAL_SEAL);
	EXPECT("no_sealing_add_eperm", RAW3(SYS_fcntl, fd, F_ADD_SEALS, SEAL_WRITE), -EPERM);
	close(fd);
	int p[2];
	pipe(p);
	EXPECT("get_seals_pipe_einval", RAW3(SYS_fcntl, p[0], F_GET_SEALS, 0), -EINVAL);
	EXPECT("add_seals_pipe_einval", RAW3(SYS_fcntl, p[1], F_ADD_SEALS, SEAL_WRITE), -EINVAL);
	close(p[0]), close(p[1]);

	fd = memfd("seal", MFD_ALLOW_SEALING_);
	EXPECT("sealing_get_seals", fcntl(fd, F_GET_SEALS), 0);
	EXPECT("unknown_seal_einval", RAW3(SYS_fcntl, fd, F_ADD_SEALS, 0x1000), -EINVAL);
	write(fd, "0123456789", 10);
	EXPECT("add_shrink", fcntl(fd, F_ADD_SEALS, SEAL_SHRINK), 0);
	EXPECT("shrink_eperm", RAW2(SYS_ftruncate, fd, 5), -EPERM);
	EXPECT("grow_ok_with_shrink_seal", ftruncate(fd, 20), 0);
	EXPECT("add_grow", fcntl(fd, F_ADD_SEALS, SEAL_GROW), 0);
	EXPECT("grow_eperm", RAW2(SYS_ftruncate, fd, 40), -EPERM);
	EXPECT("write_past_end_eperm", RAW4(SYS_pwrite64, fd, "x", 1, 20), -EPERM);
	EXPECT("write_inside_ok", pwrite(fd, "ab", 2, 0), 2);
	EXPECT("same_size_truncate_ok", ftruncate(fd, 20), 0);

	char *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT("write_seal_busy_while_mapped", RAW3(SYS_fcntl, fd, F_ADD_SEALS, SEAL_WRITE), -EBUSY);
	munmap(w, 4096);
	char *r = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	EXPECT("add_write_after_unmap", fcntl(fd, F_ADD_SEALS, SEAL_WRITE), 0);
	EXPECT("get_seals_all", fcntl(fd, F_GET_SEALS), SEAL_SHRINK | SEAL_GROW | SEAL_WRITE);
	EXPECT("write_eperm", RAW4(SYS_pwrite64, fd, "x", 1, 0), -EPERM);
	errno = 0;
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK("mmap_shared_write_eperm", m == MAP_FAILED && errno == EPERM, "errno %d", errno);
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	CHECK("mmap_shared_read_ok", m != MAP_FAILED && memcmp(m, "ab23", 4) == 0, "errno %d", errno);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK("mmap_private_write_ok", m != MAP_FAILED, "errno %d", errno);
	CHECK("private_mapping_reads", r != MAP_FAILED && r[0] == 'a', "r");
	EXPECT("add_seal_seal", fcntl(fd, F_ADD_SEALS, SEAL_SEAL), 0);
	EXPECT("sealed_add_eperm", RAW3(SYS_fcntl, fd, F_ADD_SEALS, SEAL_FUTURE_WRITE), -EPERM);
	close(fd);

	fd = memfd("future", MFD_ALLOW_SEALING_);
	ftruncate(fd, 4096);
	char *before = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT("add_future_write_while_mapped", fcntl(fd, F_ADD_SEALS, SEAL_FUTURE_WRITE), 0);
	before[0] = 'k';
	char c = 0;
	pread(fd, &c, 1, 0);
	CHECK("existing_mapping_still_writes", c == 'k', "%d", c);
	EXPECT("future_write_eperm", RAW4(SYS_pwrite64, fd, "x", 1, 0), -EPERM);
	errno = 0;
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK("future_mmap_shared_write_eperm", m == MAP_FAILED && errno == EPERM, "errno %d", errno);
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	errno = 0;
	CHECK("future_mprotect_write_eacces", mprotect(m, 4096, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
	      "errno %d", errno);
	EXPECT("future_punch_hole_eperm", RAW4(SYS_fallocate, fd, 3, 0, 4096), -EPERM);
	EXPECT("future_truncate_ok", ftruncate(fd, 8192), 0);
	close(fd);
}

int main(void) {
	args();
	identity();
	data();
	mappings();
	seals();
	return 0;
}
