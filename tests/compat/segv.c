/* Faults the application cannot recover from end it with SIGSEGV (or
 * SIGBUS/SIGILL/SIGFPE/SIGTRAP): one scenario per run, named in argv[1]. */
#include "compat.h"
#include <signal.h>
#include <sys/mman.h>

#define P 4096UL

int main(int argc, char **argv) {
	if (argc < 2) {
		FAIL("args", "scenario missing");
		return 1;
	}
	const char *s = argv[1];
	volatile char *p = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	printf("ok %s_setup\n", s);
	if (!strcmp(s, "prot_none_read")) {
		mprotect((void *)p, P, PROT_NONE);
		printf("read %d\n", p[0]);
	} else if (!strcmp(s, "read_only_write")) {
		mprotect((void *)p, P, PROT_READ);
		p[0] = 2;
	} else if (!strcmp(s, "unmapped_read")) {
		munmap((void *)p, P);
		printf("read %d\n", p[0]);
	} else if (!strcmp(s, "null_read")) {
		printf("read %d\n", *(volatile char *)0);
	} else if (!strcmp(s, "non_canonical")) {
		printf("read %d\n", *(volatile char *)0xffff800000000000UL);
	} else if (!strcmp(s, "exec_data")) {
		p[0] = 0xc3; /* ret */
		((void (*)(void))p)();
	} else if (!strcmp(s, "int3")) {
		__asm__ volatile("int3");
	} else if (!strcmp(s, "ud2")) {
		__asm__ volatile("ud2");
	} else if (!strcmp(s, "div0")) {
		__asm__ volatile("xor %%ecx, %%ecx; mov $1, %%eax; cltd; idiv %%ecx" ::: "eax", "ecx", "edx");
	} else if (!strcmp(s, "abort")) {
		abort();
	} else if (!strcmp(s, "raise_term")) {
		raise(SIGTERM);
	} else if (!strcmp(s, "kill_self_kill")) {
		kill(getpid(), SIGKILL);
	} else {
		FAIL("args", "unknown scenario %s", s);
		return 1;
	}
	FAIL(s, "survived");
	return 1;
}
