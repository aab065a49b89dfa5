/* File-backed mmap: private and shared mappings, copy-on-write isolation,
 * coherence with read/write, mprotect, mremap, madvise, msync, mincore,
 * and SIGBUS past the end of a file (argv[2] names a case that dies).
 * argv[1] is the fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define P 4096L

static long map(void *addr, long len, long prot, long flags, long fd, long off) {
	return raw(SYS_mmap, (long)addr, len, prot, flags, fd, off);
}

static void fill(long fd, long pages) {
	char b[P];
	for (long i = 0; i < pages; i++) {
		memset(b, 'a' + (int)i, P);
		RAW4(SYS_pwrite64, fd, b, P, i * P);
	}
}

static int bus_case(const char *c, long fd) {
	/* Each of these ends the process with SIGBUS. */
	if (strcmp(c, "bus_read") == 0) {
		char *m = (char *)map(NULL, 4 * P, PROT_READ, MAP_PRIVATE, fd, 0);
		printf("mapped\n");
		return m[3 * P]; /* the file has 2 pages */
	}
	if (strcmp(c, "bus_write_private") == 0) {
		char *m = (char *)map(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		printf("mapped\n");
		m[3 * P] = 1;
		return 0;
	}
	if (strcmp(c, "bus_after_truncate") == 0) {
		char *m = (char *)map(NULL, 2 * P, PROT_READ, MAP_SHARED, fd, 0);
		printf("first %c\n", m[P]);
		RAW2(SYS_ftruncate, fd, 10);
		printf("truncated\n");
		return m[P];
	}
	return -1;
}

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	long fd = RAW3(SYS_open, "f", O_CREAT | O_RDWR, 0644);
	fill(fd, 3);
	if (argc > 2) {
		RAW2(SYS_ftruncate, fd, 2 * P);
		return bus_case(argv[2], fd);
	}
	char buf[64];

	/* Private mappings. */
	char *m = (char *)map(NULL, 3 * P, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK("private_read", m != MAP_FAILED && m[0] == 'a' && m[P] == 'b' && m[2 * P + 7] == 'c', "got %p", m);
	char *o = (char *)map(NULL, P, PROT_READ, MAP_PRIVATE, fd, 2 * P);
	CHECK("offset", o != MAP_FAILED && o[0] == 'c', "got %c", o[0]);
	EXPECT("write_readonly_mapping_from_syscall", RAW3(SYS_read, fd, m, 1), -EFAULT);
	EXPECT("mprotect_private_rw", RAW3(SYS_mprotect, m, 3 * P, PROT_READ | PROT_WRITE), 0);
	m[P] = 'X';
	RAW4(SYS_pread64, fd, buf, 1, P);
	CHECK("private_write_not_in_file", buf[0] == 'b' && m[P] == 'X', "file %c map %c", buf[0], m[P]);
	char *m2 = (char *)map(NULL, 3 * P, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK("private_write_not_in_other_mapping", m2[P] == 'b', "got %c", m2[P]);
	RAW4(SYS_pwrite64, fd, "Y", 1, 2 * P);
	CHECK("unwritten_private_page_follows_file", m[2 * P] == 'Y' && m2[2 * P] == 'Y', "got %c %c", m[2 * P],
	      m2[2 * P]);
	CHECK("written_private_page_keeps_copy", m[P] == 'X', "got %c", m[P]);
	EXPECT("dontneed_private", RAW3(SYS_madvise, m, 3 * P, MADV_DONTNEED), 0);
	CHECK("dontneed_reverts_to_file", m[P] == 'b', "got %c", m[P]);
	/* A syscall writing into a private file mapping copies the page. */
	EXPECT("read_into_private_mapping", RAW4(SYS_pread64, fd, m + 2 * P + 100, 4, 0), 4);
	RAW4(SYS_pread64, fd, buf, 1, 2 * P + 100);
	CHECK("read_into_private_mapping_isolated", m[2 * P + 100] == 'a' && buf[0] == 'c', "map %c file %c",
	      m[2 * P + 100], buf[0]);
	EXPECT("write_from_mapping", RAW4(SYS_pwrite64, fd, m + P, 3, 10 * P), 3);
	RAW4(SYS_pread64, fd, buf, 3, 10 * P);
	CHECK("write_from_mapping_data", memcmp(buf, "bbb", 3) == 0, "got %.3s", buf);
	RAW2(SYS_ftruncate, fd, 3 * P);
	EXPECT("munmap", RAW2(SYS_munmap, m, 3 * P), 0);
	RAW2(SYS_munmap, m2, 3 * P);
	RAW2(SYS_munmap, o, P);

	/* Shared mappings. */
	char *s = (char *)map(NULL, 3 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK("shared_map", s != MAP_FAILED, "got %p", s);
	s[5] = 'Z';
	RAW4(SYS_pread64, fd, buf, 1, 5);
	CHECK("shared_write_reaches_file", buf[0] == 'Z', "got %c", buf[0]);
	RAW4(SYS_pwrite64, fd, "Q", 1, P + 1);
	CHECK("file_write_reaches_shared", s[P + 1] == 'Q', "got %c", s[P + 1]);
	long other = RAW3(SYS_open, "f", O_RDONLY, 0);
	char *s2 = (char *)map(NULL, P, PROT_READ, MAP_SHARED, other, 0);
	CHECK("shared_mappings_coherent", s2[5] == 'Z', "got %c", s2[5]);
	EXPECT("read_into_shared_mapping", RAW4(SYS_pread64, other, s + 2 * P, 2, 0), 2);
	RAW4(SYS_pread64, other, buf, 2, 2 * P);
	CHECK("read_into_shared_mapping_reaches_file", buf[0] == 'a' && buf[1] == 'a', "got %.2s", buf);
	EXPECT("msync_sync", RAW3(SYS_msync, s, 3 * P, MS_SYNC), 0);
	EXPECT("msync_async", RAW3(SYS_msync, s, P, MS_ASYNC), 0);
	EXPECT("msync_both_einval", RAW3(SYS_msync, s, P, MS_SYNC | MS_ASYNC), -EINVAL);
	EXPECT("msync_unaligned_einval", RAW3(SYS_msync, s + 1, P, MS_SYNC), -EINVAL);
	char *hole = (char *)map(NULL, 2 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	RAW2(SYS_munmap, hole + P, P);
	EXPECT("msync_unmapped_enomem", RAW3(SYS_msync, hole, 2 * P, MS_SYNC), -ENOMEM);
	EXPECT("shared_write_on_rdonly_fd_eacces", map(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, other, 0), -EACCES);
	EXPECT("mprotect_shared_rdonly_fd_write_eacces", RAW3(SYS_mprotect, s2, P, PROT_READ | PROT_WRITE), -EACCES);
	EXPECT("private_write_on_rdonly_fd_ok", map(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE, other, 0) > 0, 1);

	/* The last page of a file: bytes past the end read as zeros. */
	long small = RAW3(SYS_open, "small", O_CREAT | O_RDWR, 0644);
	RAW3(SYS_write, small, "0123456789", 10);
	char *t = (char *)map(NULL, P, PROT_READ, MAP_PRIVATE, small, 0);
	CHECK("tail_of_last_page_zero", t[9] == '9' && t[10] == 0 && t[P - 1] == 0, "got %d %d", t[10], t[P - 1]);
	EXPECT("syscall_reads_tail", RAW3(SYS_write, other < 0 ? 1 : small, t + 8, 4), 4);

	/* mremap keeps the file offset. */
	char *r = (char *)map(NULL, P, PROT_READ, MAP_PRIVATE, fd, 0);
	char *r2 = (char *)raw(SYS_mremap, (long)r, P, 3 * P, MREMAP_MAYMOVE, 0, 0);
	CHECK("mremap_grows_file_mapping", r2 != MAP_FAILED && r2[2 * P + 50] == 'c' && r2[P + 1] == 'Q', "got %c %c",
	      r2[2 * P + 50], r2[P + 1]);

	/* mincore */
	unsigned char vec[4];
	char *a = (char *)map(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	a[0] = 1;
	EXPECT("mincore_anon", RAW3(SYS_mincore, a, 2 * P, vec), 0);
	CHECK("mincore_anon_touched", (vec[0] & 1) == 1 && (vec[1] & 1) == 0, "got %d %d", vec[0], vec[1]);
	EXPECT("mincore_file", RAW3(SYS_mincore, s, 3 * P, vec), 0);
	CHECK("mincore_file_resident", (vec[0] & 1) && (vec[1] & 1) && (vec[2] & 1), "got %d %d %d", vec[0], vec[1],
	      vec[2]);
	EXPECT("mincore_unaligned", RAW3(SYS_mincore, a + 1, P, vec), -EINVAL);
	char *hole2 = (char *)map(NULL, 2 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	RAW2(SYS_munmap, hole2 + P, P);
	EXPECT("mincore_unmapped", RAW3(SYS_mincore, hole2, 2 * P, vec), -ENOMEM);
	EXPECT("mincore_bad_vec", RAW3(SYS_mincore, a, P, BAD_PTR), -EFAULT);
	/* A 16 GiB reservation: four million pages, none resident. */
	long big = 1L << 34;
	char *res = (char *)map(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	unsigned char *bv = (unsigned char *)map(NULL, big / P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	EXPECT("mincore_huge_reservation", RAW3(SYS_mincore, res, big, bv), 0);
	long resident = 0;
	for (long i = 0; i < big / P; i++)
		resident += bv[i] & 1;
	EXPECT("mincore_huge_reservation_nothing_resident", resident, 0);

	/* Errors. */
	long d = RAW3(SYS_open, ".", O_RDONLY | O_DIRECTORY, 0);
	EXPECT("map_directory_enodev", map(NULL, P, PROT_READ, MAP_PRIVATE, d, 0), -ENODEV);
	long wo = RAW3(SYS_open, "f", O_WRONLY, 0);
	EXPECT("map_wronly_eacces", map(NULL, P, PROT_READ, MAP_PRIVATE, wo, 0), -EACCES);
	long ap = RAW3(SYS_open, "f", O_RDWR | O_APPEND, 0);
	EXPECT("map_shared_append_write_ok", map(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, ap, 0) > 0, 1);
	EXPECT("map_bad_fd", map(NULL, P, PROT_READ, MAP_PRIVATE, 999, 0), -EBADF);
	EXPECT("map_unaligned_offset", map(NULL, P, PROT_READ, MAP_PRIVATE, fd, 100), -EINVAL);
	long pathfd = RAW3(SYS_open, "f", O_PATH, 0);
	EXPECT("map_o_path_ebadf", map(NULL, P, PROT_READ, MAP_PRIVATE, pathfd, 0), -EBADF);
	EXPECT("map_stdin_pipe_or_null", map(NULL, P, PROT_READ, MAP_PRIVATE, 0, 0) < 0, 1);
	return 0;
}
