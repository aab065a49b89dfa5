/* The program break. */
#include "compat.h"

int main(void) {
	char *start = (char *)RAW1(SYS_brk, 0);
	CHECK("brk_zero_reports", start != NULL, "brk(0) = %p", (void *)start);
	char *again = (char *)RAW1(SYS_brk, 0);
	CHECK("brk_zero_stable", again == start, "%p then %p", (void *)start, (void *)again);
	char *up = (char *)RAW1(SYS_brk, start + 100000);
	CHECK("brk_grows", up == start + 100000, "got %p", (void *)up);
	memset(start, 0xab, 100000);
	int good = 1;
	for (int i = 0; i < 100000; i++)
		good &= (unsigned char)start[i] == 0xab;
	CHECK("brk_memory_usable", good, "contents lost");
	char *down = (char *)RAW1(SYS_brk, start + 10);
	CHECK("brk_shrinks", down == start + 10, "got %p", (void *)down);
	char *regrow = (char *)RAW1(SYS_brk, start + 8192);
	CHECK("brk_regrows", regrow == start + 8192, "got %p", (void *)regrow);
	/* The page kept across the shrink keeps its contents; the rest reads
	 * as zeros again. */
	CHECK("brk_kept_page", (unsigned char)start[5] == 0xab, "got %#x", (unsigned char)start[5]);
	CHECK("brk_fresh_page_zero", start[4096 + 5] == 0, "got %#x", (unsigned char)start[4096 + 5]);
	char *below = (char *)RAW1(SYS_brk, 0x1000);
	CHECK("brk_below_start_refused", below == start + 8192, "got %p", (void *)below);
	char *huge = (char *)RAW1(SYS_brk, start + (1UL << 50));
	CHECK("brk_huge_refused", huge == start + 8192, "got %p", (void *)huge);
	return 0;
}
