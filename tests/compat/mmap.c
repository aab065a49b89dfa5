/* Anonymous mmap, munmap, mprotect, mremap, madvise. */
#include "compat.h"
#include <sys/mman.h>

#define P 4096UL

static int all(const char *p, size_t n, char c) {
	for (size_t i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

int main(void) {
	char *p = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_anon", p != MAP_FAILED && ((unsigned long)p & (P - 1)) == 0, "got %p", (void *)p);
	CHECK("mmap_anon_zeroed", all(p, 4 * P, 0), "not zero");
	memset(p, 'a', 4 * P);
	CHECK("mmap_anon_writable", all(p, 4 * P, 'a'), "lost writes");

	long r = RAW6(SYS_mmap, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_zero_length_einval", r == -EINVAL, "got %ld", r);
	r = RAW6(SYS_mmap, 0, P, PROT_READ, MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_no_type_einval", r == -EINVAL, "got %ld", r);
	r = RAW6(SYS_mmap, p + 1, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK("mmap_fixed_unaligned_einval", r == -EINVAL, "got %ld", r);
	r = RAW6(SYS_mmap, 0, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1);
	CHECK("mmap_unaligned_offset_einval", r == -EINVAL, "got %ld", r);
	r = RAW6(SYS_mmap, 0, P, 0x10, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_unknown_prot_bits_ignored", r > 0 && RAW2(SYS_munmap, r, P) == 0, "got %ld", r);
	r = RAW6(SYS_mmap, 0, -P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_huge_length_enomem", r == -ENOMEM, "got %ld", r);
	r = RAW6(SYS_mmap, 0, P, PROT_READ, MAP_PRIVATE, 99, 0);
	CHECK("mmap_bad_fd_ebadf", r == -EBADF, "got %ld", r);
	r = RAW6(SYS_mmap, 0, 0, PROT_READ, MAP_PRIVATE, 99, 0);
	CHECK("mmap_bad_fd_before_length", r == -EBADF, "got %ld", r);
	r = RAW6(SYS_mmap, 0, P, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
	CHECK("mmap_shared_growsdown_einval", r == -EINVAL, "got %ld", r);
	r = RAW6(SYS_mmap, 0, P, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_anon_shared_validate_einval", r == -EINVAL, "got %ld", r);
	r = RAW6(SYS_mmap, p, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK("mmap_noreplace_eexist", r == -EEXIST, "got %ld", r);

	/* MAP_FIXED replaces: the page reads as zeros again. */
	char *q = mmap(p + P, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK("mmap_fixed_replaces", q == p + P && all(q, P, 0) && all(p, P, 'a') && all(p + 2 * P, 2 * P, 'a'),
	      "got %p", (void *)q);

	/* A free hint is honoured: make a free place, then ask for it. */
	char *room = mmap(NULL, 16 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(room, 16 * P);
	char *hint = room + 4 * P;
	char *h = mmap(hint, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_hint_honoured", h == hint, "hint %p got %p", (void *)hint, (void *)h);
	munmap(h, P);

	/* A large reservation costs nothing until touched. */
	char *big = mmap(NULL, 1UL << 40, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK("mmap_one_tib_reservation", big != MAP_FAILED, "errno %d", errno);
	r = mprotect(big + (1UL << 39), 2 * P, PROT_READ | PROT_WRITE);
	CHECK("mprotect_inside_reservation", r == 0, "errno %d", errno);
	big[(1UL << 39) + 5] = 7;
	CHECK("reservation_page_usable", big[(1UL << 39) + 5] == 7, "lost write");
	CHECK("munmap_reservation", munmap(big, 1UL << 40) == 0, "errno %d", errno);

	/* munmap. */
	r = RAW2(SYS_munmap, p + 1, P);
	CHECK("munmap_unaligned_einval", r == -EINVAL, "got %ld", r);
	r = RAW2(SYS_munmap, p, 0);
	CHECK("munmap_zero_einval", r == -EINVAL, "got %ld", r);
	r = RAW2(SYS_munmap, UNMAPPED, P);
	CHECK("munmap_nothing_ok", r == 0, "got %ld", r);
	r = RAW2(SYS_munmap, p + 3 * P, P);
	CHECK("munmap_tail", r == 0, "got %ld", r);

	/* mprotect. */
	r = RAW3(SYS_mprotect, p, P, PROT_READ);
	CHECK("mprotect_read_only", r == 0 && all(p, P, 'a'), "got %ld", r);
	r = RAW3(SYS_mprotect, p + 1, P, PROT_READ);
	CHECK("mprotect_unaligned_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_mprotect, p, 4 * P, PROT_READ);
	CHECK("mprotect_hole_enomem", r == -ENOMEM, "got %ld", r);
	r = RAW3(SYS_mprotect, p, P, 0x100);
	CHECK("mprotect_bad_prot_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_mprotect, p, P, PROT_READ | PROT_WRITE);
	p[0] = 'b';
	CHECK("mprotect_back_to_writable", r == 0 && p[0] == 'b', "got %ld", r);
	r = RAW3(SYS_mprotect, p, 0, PROT_NONE);
	CHECK("mprotect_zero_length", r == 0, "got %ld", r);

	/* mremap: grow in place or move, keeping contents. */
	char *m = mmap(NULL, 3 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(m, 'm', 2 * P);
	/* A mapping right after the first two pages, so they cannot grow. */
	char *blocker = mmap(m + 2 * P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	r = RAW4(SYS_mremap, m, 2 * P, 8 * P, 0);
	CHECK("mremap_no_room_enomem", blocker == m + 2 * P && r == -ENOMEM, "got %ld", r);
	char *moved = mremap(m, 2 * P, 8 * P, MREMAP_MAYMOVE);
	CHECK("mremap_moves", moved != MAP_FAILED && moved != m && all(moved, 2 * P, 'm') && all(moved + 2 * P, 6 * P, 0),
	      "got %p", (void *)moved);
	r = RAW2(SYS_munmap, blocker, P);
	/* Shrinking may span several VMAs. */
	mprotect(moved + 4 * P, P, PROT_READ);
	char *shrunk = mremap(moved, 8 * P, P, 0);
	CHECK("mremap_shrinks", shrunk == moved && all(moved, P, 'm'), "got %p", (void *)shrunk);
	r = RAW4(SYS_mremap, moved + 1, P, 2 * P, 0);
	CHECK("mremap_unaligned_einval", r == -EINVAL, "got %ld", r);
	r = RAW4(SYS_mremap, UNMAPPED, P, 2 * P, MREMAP_MAYMOVE);
	CHECK("mremap_unmapped_efault", r == -EFAULT, "got %ld", r);
	r = RAW4(SYS_mremap, moved, P, 2 * P, 0x80);
	CHECK("mremap_bad_flags_einval", r == -EINVAL, "got %ld", r);
	r = RAW4(SYS_mremap, moved, P, 2 * P, MREMAP_FIXED);
	CHECK("mremap_fixed_without_maymove_einval", r == -EINVAL, "got %ld", r);

	/* madvise(MADV_DONTNEED) on private anonymous memory: zeros. */
	memset(p, 'd', P);
	r = RAW3(SYS_madvise, p, P, MADV_DONTNEED);
	CHECK("madvise_dontneed_zeroes", r == 0 && all(p, P, 0), "got %ld", r);
	r = RAW3(SYS_madvise, p + 1, P, MADV_DONTNEED);
	CHECK("madvise_unaligned_einval", r == -EINVAL, "got %ld", r);
	r = RAW3(SYS_madvise, UNMAPPED, P, MADV_WILLNEED);
	CHECK("madvise_unmapped_enomem", r == -ENOMEM, "got %ld", r);
	r = RAW3(SYS_madvise, p, P, 12345);
	CHECK("madvise_unknown_einval", r == -EINVAL, "got %ld", r);

	/* MAP_POPULATE and MAP_SHARED anonymous memory. */
	char *pop = mmap(NULL, 3 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	CHECK("mmap_populate", pop != MAP_FAILED && all(pop, 3 * P, 0), "got %p", (void *)pop);
	char *sh = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap_shared_anon", sh != MAP_FAILED && (sh[0] = 's') == 's', "got %p", (void *)sh);
	r = RAW3(SYS_msync, sh, P, MS_SYNC);
	CHECK("msync_anon", r == 0, "got %ld", r);
	r = RAW3(SYS_msync, sh, P, MS_SYNC | MS_ASYNC);
	CHECK("msync_both_einval", r == -EINVAL, "got %ld", r);
	r = RAW2(SYS_mlock, sh, P);
	CHECK("mlock", r == 0, "got %ld", r);
	r = RAW2(SYS_munlock, sh, P);
	CHECK("munlock", r == 0, "got %ld", r);
	return 0;
}
