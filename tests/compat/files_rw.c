/* Reading, writing and seeking regular files: read/write/pread64/pwrite64,
 * readv/writev/preadv/pwritev/preadv2/pwritev2, lseek (SEEK_DATA and
 * SEEK_HOLE), truncate/ftruncate/fallocate, the sync calls, fadvise64,
 * sendfile, copy_file_range. argv[1] is the fixture directory. */
#include "compat.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

static long fsize(long fd) {
	struct stat st;
	long r = RAW2(SYS_fstat, fd, &st);
	return r < 0 ? r : (long)st.st_size;
}

static long op(const char *p, long flags) {
	return RAW3(SYS_open, p, flags, 0644);
}

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory");
		return 1;
	}
	char buf[256];
	long fd = op("f", O_CREAT | O_RDWR);

	EXPECT("write", RAW3(SYS_write, fd, "0123456789", 10), 10);
	EXPECT("offset_after_write", RAW3(SYS_lseek, fd, 0, SEEK_CUR), 10);
	EXPECT("read_at_eof", RAW3(SYS_read, fd, buf, sizeof buf), 0);
	EXPECT("pread", RAW4(SYS_pread64, fd, buf, 4, 3), 4);
	CHECK("pread_data", memcmp(buf, "3456", 4) == 0, "got %.4s", buf);
	EXPECT("pread_keeps_offset", RAW3(SYS_lseek, fd, 0, SEEK_CUR), 10);
	EXPECT("pread_past_eof", RAW4(SYS_pread64, fd, buf, 4, 100), 0);
	EXPECT("pread_short_at_end", RAW4(SYS_pread64, fd, buf, 100, 8), 2);
	EXPECT("pread_negative_einval", RAW4(SYS_pread64, fd, buf, 4, -1), -EINVAL);
	EXPECT("pwrite_beyond_eof", RAW4(SYS_pwrite64, fd, "Z", 1, 20), 1);
	EXPECT("pwrite_grows_file", fsize(fd), 21);
	EXPECT("pread_hole_zeroes", RAW4(SYS_pread64, fd, buf, 11, 10), 11);
	CHECK("hole_is_zero", buf[0] == 0 && buf[9] == 0 && buf[10] == 'Z', "got %d %d %d", buf[0], buf[9],
	      buf[10]);
	EXPECT("read_zero_length", RAW3(SYS_read, fd, buf, 0), 0);
	EXPECT("read_bad_buffer_efault", RAW4(SYS_pread64, fd, BAD_PTR, 4, 0), -EFAULT);
	EXPECT("write_bad_buffer_efault", RAW3(SYS_write, fd, BAD_PTR, 4), -EFAULT);

	/* Vectors. */
	struct iovec w[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
	EXPECT("pwritev", RAW4(SYS_pwritev, fd, w, 3, 0), 5);
	char x1[2], x2[3];
	struct iovec r[2] = {{x1, 2}, {x2, 3}};
	EXPECT("preadv", RAW4(SYS_preadv, fd, r, 2, 0), 5);
	CHECK("preadv_data", memcmp(x1, "ab", 2) == 0 && memcmp(x2, "cde", 3) == 0, "got %.2s %.3s", x1, x2);
	RAW3(SYS_lseek, fd, 2, SEEK_SET);
	EXPECT("preadv2_current_offset", RAW6(SYS_preadv2, fd, r, 2, -1, 0, 0), 5);
	CHECK("preadv2_data", memcmp(x1, "cd", 2) == 0, "got %.2s", x1);
	EXPECT("preadv2_moved_offset", RAW3(SYS_lseek, fd, 0, SEEK_CUR), 7);
	EXPECT("preadv2_unknown_flag", RAW6(SYS_preadv2, fd, r, 2, 0, 0, 0x10000), -EOPNOTSUPP);
	EXPECT("pwritev2_append", RAW6(SYS_pwritev2, fd, w, 1, 0, 0, 0x10 /* RWF_APPEND */), 2);
	EXPECT("pwritev2_append_at_end", fsize(fd), 23);
	EXPECT("pwritev2_dsync", RAW6(SYS_pwritev2, fd, w, 1, 0, 0, 2 /* RWF_DSYNC */), 2);
	EXPECT("preadv_negative_offset", RAW4(SYS_preadv, fd, r, 2, -5), -EINVAL);
	EXPECT("readv_negative_count", RAW3(SYS_readv, fd, r, -1), -EINVAL);
	RAW3(SYS_lseek, fd, 0, SEEK_SET);
	EXPECT("writev", RAW3(SYS_writev, fd, w, 3), 5);
	RAW3(SYS_lseek, fd, 0, SEEK_SET);
	EXPECT("readv", RAW3(SYS_readv, fd, r, 2), 5);

	/* Seeking. */
	EXPECT("seek_set", RAW3(SYS_lseek, fd, 4, SEEK_SET), 4);
	EXPECT("seek_cur", RAW3(SYS_lseek, fd, 3, SEEK_CUR), 7);
	EXPECT("seek_end", RAW3(SYS_lseek, fd, -3, SEEK_END), 20);
	EXPECT("seek_past_end", RAW3(SYS_lseek, fd, 1000, SEEK_END), 1023);
	EXPECT("seek_negative_einval", RAW3(SYS_lseek, fd, -1, SEEK_SET), -EINVAL);
	EXPECT("seek_bad_whence_einval", RAW3(SYS_lseek, fd, 0, 5), -EINVAL);
	long h = op("holes", O_CREAT | O_RDWR);
	RAW4(SYS_pwrite64, h, "data", 4, 0);
	RAW4(SYS_pwrite64, h, "data", 4, 1 << 20);
	EXPECT("seek_data_start", RAW3(SYS_lseek, h, 0, SEEK_DATA), 0);
	EXPECT("seek_hole_after_data", RAW3(SYS_lseek, h, 0, SEEK_HOLE), 4096);
	EXPECT("seek_data_second", RAW3(SYS_lseek, h, 4096, SEEK_DATA), 1 << 20);
	EXPECT("seek_hole_at_end", RAW3(SYS_lseek, h, (1 << 20) + 1, SEEK_HOLE), (1 << 20) + 4);
	EXPECT("seek_data_past_end_enxio", RAW3(SYS_lseek, h, (1 << 20) + 4, SEEK_DATA), -ENXIO);
	EXPECT("seek_hole_past_end_enxio", RAW3(SYS_lseek, h, 2 << 20, SEEK_HOLE), -ENXIO);

	/* O_APPEND: pwrite ignores the offset (a Linux quirk). */
	long a = op("f", O_WRONLY | O_APPEND);
	EXPECT("append_pwrite", RAW4(SYS_pwrite64, a, "Q", 1, 0), 1);
	EXPECT("append_pwrite_at_end", fsize(a), 24);
	RAW1(SYS_close, a);

	/* Truncation and allocation. */
	EXPECT("ftruncate_shrink", RAW2(SYS_ftruncate, fd, 5), 0);
	EXPECT("ftruncate_size", fsize(fd), 5);
	EXPECT("ftruncate_grow", RAW2(SYS_ftruncate, fd, 100), 0);
	EXPECT("ftruncate_grown", fsize(fd), 100);
	EXPECT("ftruncate_negative_einval", RAW2(SYS_ftruncate, fd, -1), -EINVAL);
	long ro = op("f", O_RDONLY);
	EXPECT("ftruncate_rdonly_einval", RAW2(SYS_ftruncate, ro, 1), -EINVAL);
	EXPECT("fallocate_rdonly_ebadf", RAW4(SYS_fallocate, ro, 0, 0, 10), -EBADF);
	EXPECT("write_rdonly_ebadf", RAW3(SYS_write, ro, "x", 1), -EBADF);
	EXPECT("truncate_path", RAW2(SYS_truncate, "f", 7), 0);
	EXPECT("truncate_path_size", fsize(fd), 7);
	mkdir("d", 0755);
	EXPECT("truncate_dir_eisdir", RAW2(SYS_truncate, "d", 0), -EISDIR);
	EXPECT("truncate_missing_enoent", RAW2(SYS_truncate, "nope", 0), -ENOENT);
	EXPECT("truncate_negative_einval", RAW2(SYS_truncate, "f", -1), -EINVAL);
	EXPECT("fallocate", RAW4(SYS_fallocate, fd, 0, 0, 8192), 0);
	EXPECT("fallocate_extends", fsize(fd), 8192);
	EXPECT("fallocate_keep_size", RAW4(SYS_fallocate, fd, 1 /* KEEP_SIZE */, 0, 65536), 0);
	EXPECT("fallocate_keep_size_size", fsize(fd), 8192);
	EXPECT("fallocate_punch_without_keep_eopnotsupp", RAW4(SYS_fallocate, fd, 2, 0, 4096), -EOPNOTSUPP);
	EXPECT("fallocate_punch", RAW4(SYS_fallocate, fd, 3, 0, 4096), 0);
	EXPECT("fallocate_zero_len_einval", RAW4(SYS_fallocate, fd, 0, 0, 0), -EINVAL);
	EXPECT("fallocate_negative_einval", RAW4(SYS_fallocate, fd, 0, -1, 10), -EINVAL);
	long dfd = op("d", O_RDONLY | O_DIRECTORY);
	EXPECT("fallocate_dir_ebadf", RAW4(SYS_fallocate, dfd, 0, 0, 10), -EBADF);
	EXPECT("pread_dir_eisdir", RAW4(SYS_pread64, dfd, buf, 1, 0), -EISDIR);
	EXPECT("write_dir_ebadf", RAW3(SYS_write, dfd, "x", 1), -EBADF);

	/* Sync and advice. */
	EXPECT("fsync", RAW1(SYS_fsync, fd), 0);
	EXPECT("fdatasync", RAW1(SYS_fdatasync, fd), 0);
	EXPECT("fsync_dir", RAW1(SYS_fsync, dfd), 0);
	EXPECT("fsync_bad_fd", RAW1(SYS_fsync, 999), -EBADF);
	EXPECT("syncfs", RAW1(SYS_syncfs, fd), 0);
	EXPECT("syncfs_bad_fd", RAW1(SYS_syncfs, 999), -EBADF);
	EXPECT("sync", RAW0(SYS_sync), 0);
	EXPECT("fadvise", RAW4(SYS_fadvise64, fd, 0, 0, 2 /* SEQUENTIAL */), 0);
	EXPECT("fadvise_bad_advice", RAW4(SYS_fadvise64, fd, 0, 0, 99), -EINVAL);
	EXPECT("fadvise_negative_len", RAW4(SYS_fadvise64, fd, 0, -1, 0), -EINVAL);
	EXPECT("fadvise_bad_fd", RAW4(SYS_fadvise64, 999, 0, 0, 0), -EBADF);

	/* sendfile and copy_file_range. */
	RAW2(SYS_ftruncate, fd, 0);
	RAW4(SYS_pwrite64, fd, "sendfile-data", 13, 0);
	long out = op("out", O_CREAT | O_RDWR | O_TRUNC);
	long off = 4;
	RAW3(SYS_lseek, fd, 0, SEEK_SET);
	EXPECT("sendfile_offset", RAW4(SYS_sendfile, out, fd, &off, 100), 9);
	EXPECT("sendfile_offset_updated", off, 13);
	EXPECT("sendfile_file_pos_unchanged", RAW3(SYS_lseek, fd, 0, SEEK_CUR), 0);
	EXPECT("sendfile_no_offset", RAW4(SYS_sendfile, out, fd, NULL, 4), 4);
	EXPECT("sendfile_moves_pos", RAW3(SYS_lseek, fd, 0, SEEK_CUR), 4);
	EXPECT("sendfile_result", RAW4(SYS_pread64, out, buf, 64, 0), 13);
	CHECK("sendfile_data", memcmp(buf, "file-datasend", 13) == 0, "got %.13s", buf);
	EXPECT("sendfile_bad_offset_efault", RAW4(SYS_sendfile, out, fd, BAD_PTR, 4), -EFAULT);
	EXPECT("sendfile_to_rdonly_ebadf", RAW4(SYS_sendfile, ro, fd, NULL, 4), -EBADF);
	long ap = op("out", O_WRONLY | O_APPEND);
	EXPECT("sendfile_to_append_einval", RAW4(SYS_sendfile, ap, fd, NULL, 4), -EINVAL);
	RAW1(SYS_close, ap);
	long in_off = 0, out_off = 100;
	EXPECT("copy_file_range", RAW6(SYS_copy_file_range, fd, &in_off, out, &out_off, 8, 0), 8);
	CHECK("copy_file_range_offsets", in_off == 8 && out_off == 108, "got %ld %ld", in_off, out_off);
	EXPECT("copy_file_range_size", fsize(out), 108);
	EXPECT("copy_file_range_flags_einval", RAW6(SYS_copy_file_range, fd, &in_off, out, &out_off, 8, 1),
	       -EINVAL);
	in_off = 0;
	out_off = 2;
	EXPECT("copy_file_range_overlap_einval", RAW6(SYS_copy_file_range, fd, &in_off, fd, &out_off, 8, 0),
	       -EINVAL);
	in_off = 1000;
	EXPECT("copy_file_range_past_eof", RAW6(SYS_copy_file_range, fd, &in_off, out, NULL, 8, 0), 0);
	EXPECT("copy_file_range_dir_eisdir", RAW6(SYS_copy_file_range, dfd, NULL, out, NULL, 8, 0), -EISDIR);
	EXPECT("copy_file_range_eisdir_before_ebadf", RAW6(SYS_copy_file_range, dfd, NULL, ro, NULL, 8, 0), -EISDIR);

	/* A large transfer, in one call each way. */
	long big = 3 << 20;
	char *p = malloc(big), *q = malloc(big);
	for (long i = 0; i < big; i++)
		p[i] = (char)(i * 7);
	long wn = RAW4(SYS_pwrite64, out, p, big, 0);
	long rn = 0, k;
	while (rn < big && (k = RAW4(SYS_pread64, out, q + rn, big - rn, rn)) > 0)
		rn += k;
	CHECK("large_round_trip", wn == big && rn == big && memcmp(p, q, big) == 0, "wrote %ld read %ld", wn, rn);
	return 0;
}
