/* argv, envp and the auxiliary vector a new program starts with. */
#include "compat.h"
#include <elf.h>
#include <sys/auxv.h>

extern char **environ;
extern char _start[];
extern const Elf64_Ehdr __ehdr_start;

int main(int argc, char **argv) {
	/* Transcript: what the program was given. */
	printf("argc %d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d] %s\n", i, argv[i]);
	CHECK("argv_null_terminated", argv[argc] == NULL, "argv[argc] = %p", (void *)argv[argc]);
	int n = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "COMPAT_", 7) == 0)
			printf("env %s\n", *e);
	for (char **e = environ; *e; e++)
		n++;
	CHECK("envp_follows_argv", environ == argv + argc + 1, "environ %p, argv %p", (void *)environ,
	      (void *)argv);

	/* Values both kernels must report the same. */
	printf("AT_PAGESZ %lu\n", getauxval(AT_PAGESZ));
	printf("AT_CLKTCK %lu\n", getauxval(AT_CLKTCK));
	printf("AT_UID %lu AT_EUID %lu AT_GID %lu AT_EGID %lu\n", getauxval(AT_UID), getauxval(AT_EUID),
	       getauxval(AT_GID), getauxval(AT_EGID));
	printf("AT_SECURE %lu\n", getauxval(AT_SECURE));
	printf("AT_HWCAP %#lx\n", getauxval(AT_HWCAP));
	printf("AT_HWCAP2 %#lx\n", getauxval(AT_HWCAP2));
	printf("AT_MINSIGSTKSZ %lu\n", getauxval(51));
	/* 0 for a static program; the interpreter's (randomised) base for a
	 * dynamic one: where the ELF header of ld.so is. */
	unsigned long base = getauxval(AT_BASE);
	if (base == 0)
		printf("AT_BASE 0\n");
	else
		CHECK("at_base_is_interpreter", base % 4096 == 0 && memcmp((void *)base, "\177ELF", 4) == 0,
		      "AT_BASE %#lx", base);
	const char *plat = (const char *)getauxval(AT_PLATFORM);
	printf("AT_PLATFORM %s\n", plat ? plat : "(none)");
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	printf("AT_EXECFN %s\n", execfn ? execfn : "(none)");

	/* Values that are addresses: checked, not printed. */
	CHECK("at_entry_is_start", getauxval(AT_ENTRY) == (unsigned long)_start, "AT_ENTRY %#lx, _start %p",
	      getauxval(AT_ENTRY), (void *)_start);
	unsigned long phdr = getauxval(AT_PHDR);
	CHECK("at_phdr", phdr == (unsigned long)&__ehdr_start + __ehdr_start.e_phoff, "AT_PHDR %#lx", phdr);
	CHECK("at_phnum", getauxval(AT_PHNUM) == __ehdr_start.e_phnum, "AT_PHNUM %lu", getauxval(AT_PHNUM));
	CHECK("at_phent", getauxval(AT_PHENT) == sizeof(Elf64_Phdr), "AT_PHENT %lu", getauxval(AT_PHENT));
	const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
	int nonzero = 0;
	if (rnd)
		for (int i = 0; i < 16; i++)
			nonzero |= rnd[i];
	CHECK("at_random", rnd && nonzero, "AT_RANDOM %p", (void *)rnd);
	CHECK("execfn_on_stack", execfn && (unsigned long)execfn > (unsigned long)argv,
	      "AT_EXECFN %p below argv %p", (void *)execfn, (void *)argv);
	/* The strings live above the pointer arrays, in order. */
	CHECK("argv_strings_ascending", argc < 2 || argv[1] > argv[0], "argv[0] %p argv[1] %p", (void *)argv[0],
	      (void *)argv[1]);
	/* The ABI: rsp is 16-byte aligned at _start, i.e. argc's address. */
	CHECK("stack_aligned", ((unsigned long)(argv - 1) & 15) == 0, "&argc %p", (void *)(argv - 1));
	return 0;
}
