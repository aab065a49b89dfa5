/* The vDSO: mapped where AT_SYSINFO_EHDR says, an ELF shared object
 * exporting Linux's __vdso_* functions (version LINUX_2.6), whose answers
 * agree with the system calls' and never go back against them. The
 * functions are found by reading the image's own dynamic symbol table, as
 * a libc does, and called directly. */
#include "compat.h"
#include <elf.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static const Elf64_Ehdr *eh;
static const Elf64_Sym *symtab;
static const char *strtab;
static const Elf64_Word *hash;
static const Elf64_Half *versym;
static const Elf64_Verdef *verdef;
static long base; /* load bias: the image is linked at its PT_LOAD vaddr */

static int parse(void) {
	eh = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
	if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
		return -1;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)((const char *)eh + eh->e_phoff);
	const Elf64_Dyn *dyn = NULL;
	int loads = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && loads++ == 0)
			base = (long)eh + (long)ph[i].p_offset - (long)ph[i].p_vaddr;
		else if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const Elf64_Dyn *)((const char *)eh + ph[i].p_offset);
	}
	if (!dyn || !loads)
		return -2;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		const void *p = (const void *)(base + (long)dyn->d_un.d_ptr);
		switch (dyn->d_tag) {
		case DT_SYMTAB: symtab = p; break;
		case DT_STRTAB: strtab = p; break;
		case DT_HASH: hash = p; break;
		case DT_VERSYM: versym = p; break;
		case DT_VERDEF: verdef = p; break;
		}
	}
	return symtab && strtab && hash ? 0 : -3;
}

/* The version name of symbol index i, or NULL. */
static const char *version_of(unsigned i) {
	if (!versym || !verdef)
		return NULL;
	unsigned want = versym[i] & 0x7fff;
	for (const Elf64_Verdef *d = verdef;; d = (const Elf64_Verdef *)((const char *)d + d->vd_next)) {
		if (d->vd_ndx == want && !(d->vd_flags & VER_FLG_BASE)) {
			const Elf64_Verdaux *a = (const Elf64_Verdaux *)((const char *)d + d->vd_aux);
			return strtab + a->vda_name;
		}
		if (!d->vd_next)
			return NULL;
	}
}

static void *lookup(const char *name) {
	unsigned nsyms = hash[1];
	for (unsigned i = 1; i < nsyms; i++) {
		const Elf64_Sym *s = &symtab[i];
		if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF)
			continue;
		if (strcmp(strtab + s->st_name, name) != 0)
			continue;
		const char *v = version_of(i);
		if (v && strcmp(v, "LINUX_2.6") != 0)
			continue;
		return (void *)(base + (long)s->st_value);
	}
	return NULL;
}

static long long ns(struct timespec t) {
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

typedef int (*gettime_fn)(clockid_t, struct timespec *);
typedef int (*tod_fn)(struct timeval *, void *);
typedef long (*time_fn)(long *);
typedef int (*getcpu_fn)(unsigned *, unsigned *, void *);

static gettime_fn vgettime, vgetres;

/* vDSO and system call readings of `clk` interleaved never go back. */
static int interleaved(clockid_t clk) {
	struct timespec a, b, c;
	for (int i = 0; i < 2000; i++) {
		if (vgettime(clk, &a) || RAW2(SYS_clock_gettime, clk, &b) || vgettime(clk, &c))
			return 0;
		if (ns(b) < ns(a) || ns(c) < ns(b))
			return 0;
	}
	return 1;
}

int main(void) {
	int r = parse();
	CHECK("auxv_sysinfo_ehdr_is_an_elf_image", r == 0, "parse %d", r);
	if (r)
		return 0;
	CHECK("image_is_a_shared_object", eh->e_type == ET_DYN, "type %d", eh->e_type);
	vgettime = (gettime_fn)lookup("__vdso_clock_gettime");
	vgetres = (gettime_fn)lookup("__vdso_clock_getres");
	tod_fn vtod = (tod_fn)lookup("__vdso_gettimeofday");
	time_fn vtime = (time_fn)lookup("__vdso_time");
	getcpu_fn vgetcpu = (getcpu_fn)lookup("__vdso_getcpu");
	CHECK("exports_linux_2_6_symbols", vgettime && vgetres && vtod && vtime && vgetcpu, "%p %p %p %p %p",
	      (void *)vgettime, (void *)vgetres, (void *)vtod, (void *)vtime, (void *)vgetcpu);
	if (!(vgettime && vgetres && vtod && vtime && vgetcpu))
		return 0;

	CHECK("monotonic_interleaved_with_syscall", interleaved(CLOCK_MONOTONIC), "went back");
	CHECK("realtime_interleaved_with_syscall", interleaved(CLOCK_REALTIME), "went back");
	CHECK("boottime_interleaved_with_syscall", interleaved(CLOCK_BOOTTIME), "went back");
	CHECK("tai_interleaved_with_syscall", interleaved(CLOCK_TAI), "went back");
	CHECK("monotonic_raw_interleaved_with_syscall", interleaved(CLOCK_MONOTONIC_RAW), "went back");

	/* Coarse clocks trail the precise ones by at most their resolution. */
	struct timespec fine, coarse, res;
	vgetres(CLOCK_MONOTONIC_COARSE, &res);
	vgettime(CLOCK_MONOTONIC, &fine);
	vgettime(CLOCK_MONOTONIC_COARSE, &coarse);
	CHECK("monotonic_coarse_trails", ns(coarse) <= ns(fine) + 1000 && ns(fine) - ns(coarse) < 3 * ns(res),
	      "fine %lld coarse %lld res %lld", ns(fine), ns(coarse), ns(res));
	vgettime(CLOCK_REALTIME, &fine);
	vgettime(CLOCK_REALTIME_COARSE, &coarse);
	CHECK("realtime_coarse_trails", ns(coarse) <= ns(fine) + 1000 && ns(fine) - ns(coarse) < 3 * ns(res),
	      "fine %lld coarse %lld", ns(fine), ns(coarse));

	/* gettimeofday, time and CLOCK_REALTIME tell the same time. */
	struct timeval tv;
	struct timespec rt0, rt1;
	vgettime(CLOCK_REALTIME, &rt0);
	int tr = vtod(&tv, NULL);
	long tt = vtime(NULL), tt2 = 0;
	vtime(&tt2);
	vgettime(CLOCK_REALTIME, &rt1);
	long long us = tv.tv_sec * 1000000LL + tv.tv_usec;
	CHECK("gettimeofday_matches_realtime", tr == 0 && us >= ns(rt0) / 1000 && us <= ns(rt1) / 1000,
	      "%d %lld [%lld %lld]", tr, us, ns(rt0) / 1000, ns(rt1) / 1000);
	/* Linux's time() is the coarse clock's second: up to a tick behind. */
	CHECK("time_matches_realtime", tt >= rt0.tv_sec - 1 && tt <= rt1.tv_sec && tt2 >= tt - 1 && tt2 <= rt1.tv_sec,
	      "%ld %ld [%ld %ld]", tt, tt2, (long)rt0.tv_sec, (long)rt1.tv_sec);
	struct {
		int minutes, dst;
	} tz = {99, 99};
	tr = vtod(NULL, &tz);
	struct {
		int minutes, dst;
	} tz2 = {98, 98};
	RAW2(SYS_gettimeofday, NULL, &tz2);
	CHECK("gettimeofday_timezone_as_syscall", tr == 0 && tz.minutes == tz2.minutes && tz.dst == tz2.dst,
	      "%d %d/%d vs %d/%d", tr, tz.minutes, tz.dst, tz2.minutes, tz2.dst);

	/* Resolutions as the system call gives them; bad clocks EINVAL. */
	const int clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE,
			      CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, CLOCK_TAI, CLOCK_PROCESS_CPUTIME_ID};
	int same = 1;
	for (unsigned i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		struct timespec a = {7, 7}, b = {8, 8};
		int x = vgetres(clocks[i], &a);
		long y = RAW2(SYS_clock_getres, clocks[i], &b);
		if (x != y || a.tv_sec != b.tv_sec || a.tv_nsec != b.tv_nsec) {
			FAIL("clock_getres_as_syscall", "clock %d: %d %ld.%09ld vs %ld %ld.%09ld", clocks[i], x,
			     (long)a.tv_sec, a.tv_nsec, y, (long)b.tv_sec, b.tv_nsec);
			same = 0;
		}
	}
	if (same)
		OK("clock_getres_as_syscall");
	EXPECT("clock_getres_null", vgetres(CLOCK_MONOTONIC, NULL), 0);
	struct timespec junk;
	EXPECT("bad_clock_einval", vgettime(12345, &junk), -EINVAL);
	EXPECT("bad_clock_getres_einval", vgetres(-77777, &junk), -EINVAL);
	/* A CPU clock is not the vDSO's: the system call answers. */
	EXPECT("cpu_clock_answered", vgettime(CLOCK_PROCESS_CPUTIME_ID, &junk), 0);

	unsigned cpu = 9999, node = 9999, snode = 9998;
	r = vgetcpu(&cpu, &node, NULL);
	RAW3(SYS_getcpu, NULL, &snode, NULL);
	CHECK("getcpu_as_syscall", r == 0 && cpu < 4096 && node == snode, "%d cpu %u node %u/%u", r, cpu, node, snode);
	EXPECT("getcpu_null_args", vgetcpu(NULL, NULL, NULL), 0);

	/* The libc's own calls agree (they go through the vDSO). */
	struct timespec l0, l1;
	clock_gettime(CLOCK_MONOTONIC, &l0);
	vgettime(CLOCK_MONOTONIC, &l1);
	CHECK("libc_clock_gettime_agrees", ns(l1) >= ns(l0) && ns(l1) - ns(l0) < 1000000000LL, "%lld %lld",
	      ns(l0), ns(l1));

	/* Sleeps last at least as long as the vDSO's clock says. */
	struct timespec s0, s1, d = {0, 20000000};
	vgettime(CLOCK_MONOTONIC, &s0);
	nanosleep(&d, NULL);
	vgettime(CLOCK_MONOTONIC, &s1);
	CHECK("nanosleep_at_least_as_long", ns(s1) - ns(s0) >= 20000000, "%lld", ns(s1) - ns(s0));
	vgettime(CLOCK_MONOTONIC, &s0);
	struct timespec until = {s0.tv_sec, s0.tv_nsec + 15000000};
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
	vgettime(CLOCK_MONOTONIC, &s1);
	CHECK("abs_sleep_not_early", ns(s1) >= ns(until), "woke %lld before", ns(until) - ns(s1));

	/* A forked child has the same vDSO, and it works there. */
	pid_t c = fork();
	if (c == 0) {
		struct timespec t;
		_exit(getauxval(AT_SYSINFO_EHDR) == (unsigned long)eh && vgettime(CLOCK_MONOTONIC, &t) == 0 &&
				      ns(t) >= ns(s1)
			      ? 0
			      : 1);
	}
	int st;
	waitpid(c, &st, 0);
	CHECK("fork_child_has_it", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);

	/* The clock page stays read-only. */
	long vvar_page = 0;
	{
		FILE *mf = fopen("/proc/self/maps", "r");
		char ln[512];
		while (mf && fgets(ln, sizeof ln, mf)) {
			unsigned long lo, hi;
			if (strstr(ln, "[vvar]") && sscanf(ln, "%lx-%lx", &lo, &hi) == 2)
				vvar_page = (long)lo;
		}
		if (mf)
			fclose(mf);
	}
	EXPECT("vvar_mprotect_write_eacces", vvar_page ? RAW3(SYS_mprotect, vvar_page, 4096, 3) : -1, -EACCES);

	/* /proc/self/maps names it, with no file. */
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int vdso_line = 0, vvar_line = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		if (strstr(line, "[vdso]"))
			vdso_line = lo == (unsigned long)eh && strcmp(perms, "r-xp") == 0 && strstr(line, " 00:00 0 ");
		if (strstr(line, "[vvar]"))
			vvar_line = perms[0] == 'r' && perms[1] == '-' && hi <= (unsigned long)eh;
	}
	if (f)
		fclose(f);
	CHECK("maps_shows_vdso", vdso_line, "no [vdso] r-xp line at %p", (void *)eh);
	CHECK("maps_shows_vvar_below", vvar_line, "no [vvar] below the vDSO");
	return 0;
}
