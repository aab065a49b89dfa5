/* The format of the /proc files programs parse, field by field, for a
 * process of a known shape: its comm set to "a) b" (a space and a ')'),
 * nice 5, umask 027, SIGUSR1 and signal 40 blocked, SIGUSR2 and signal 41
 * ignored, SIGHUP and signal 42 caught, two more threads blocked in a
 * read, a read-only and a read-write private anonymous mapping of three
 * pages each (between PROT_NONE guard pages, so that nothing merges with
 * them), a shared mapping of a file at offset 4096, a grown brk, a soft
 * RLIMIT_NOFILE of 777. Files: /proc/self/stat, status, maps, smaps,
 * smaps_rollup, auxv, io, statm, limits, cmdline, environ, comm,
 * fdinfo/N, mountinfo, task/TID/{stat,status,comm}, and /proc/meminfo.
 *
 * Linux is the specification: every case compares what the file shows
 * against what the program set or can learn otherwise (getpid, getrlimit,
 * sched_getaffinity, capget, getauxval, the initial stack), and prints
 * only ok or a failure, never a value that differs between machines or
 * runs. Keys or lines whose presence depends on the kernel's
 * configuration or the CPU (Kthread, Speculation_*, Mems_allowed*,
 * untag_mask, HugetlbPages, ProtectionKey, [vvar_vclock], [vsyscall], the
 * "sd" VmFlag) are not tested.
 *
 * Linux details encoded here: /proc/PID/stat's signal fields (31-34) are
 * decimal and masked to signals 1-31 (real-time signals appear only in
 * status); Groups: ends with a space; an anonymous maps line ends with a
 * space after the inode, a named one starts its path at offset 73 (the
 * prefix padded to 72, then a space); stat's kstkesp, kstkeip, wchan,
 * itrealvalue, nswap and cnswap are 0 for a live task; statm's lib and dt
 * are 0; fdinfo's flags carry O_LARGEFILE and O_CLOEXEC; mountinfo lists
 * mounts in mount order, not with the root first; RSS counters are
 * per-CPU and read unsummed, so stat's rss and VmRSS may be 0 for a small
 * process (only smaps, which walks the page tables, is exact).
 *
 * /proc must be the one of the program's pid namespace (natively a plain
 * child, or `unshare --pid --fork --mount-proc`). */
#include "compat.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define PAGE 4096UL
#define COMM "a) b"
#define NICE 5
#define UMASK 027
#define NOFILE_SOFT 777UL
#define RT_BLOCK 40
#define RT_IGN 41
#define RT_CATCH 42
#define BIT(s) (1UL << ((s) - 1))
/* The signals the C libraries keep for themselves (glibc 32-33, musl
 * 32-34): whatever they do with them is not the program's to check. */
#define LIBC_SIGS (BIT(32) | BIT(33) | BIT(34))

static char buf[1 << 20] __attribute__((aligned(16)));
static char buf2[1 << 20];
static char mapsbuf[1 << 20];
static char smapsbuf[1 << 22];

static int g_argc;
static char **g_argv, **g_envp;
static unsigned long ro_addr, rw_addr, file_addr;
static char file_path[64], fd_path[64];
static struct stat file_st;
static unsigned long nofile_soft;
static volatile pid_t tids[2];
static int block_pipe[2], ready_pipe[2];

/* Reads `path` whole into `b` (NUL-terminated): its length, or -errno. */
static long slurp(const char *path, char *b, long cap) {
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	long n = 0;
	for (;;) {
		long r = read(fd, b + n, cap - 1 - n);
		if (r < 0) {
			n = -errno;
			break;
		}
		if (r == 0 || (n += r) >= cap - 1)
			break;
	}
	close(fd);
	if (n >= 0)
		b[n] = 0;
	return n;
}

/* Whether `s` is a decimal number (digits only, at least one). */
static int is_num(const char *s) {
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int is_hex(const char *s, size_t len) {
	if (strlen(s) != len)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* ---- key: value files (status, smaps blocks, meminfo, io) ---- */

struct kv {
	char key[48];
	char val[400]; /* after the ':' */
};
static struct kv kvs[160];

/* Splits `text` (up to `end`, or its NUL) into lines "key:value". */
static int parse_kv(const char *text, const char *end, struct kv *out, int max) {
	int n = 0;
	const char *p = text;
	while (*p && (!end || p < end) && n < max) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		const char *colon = memchr(p, ':', (size_t)(nl - p));
		size_t kl = colon ? (size_t)(colon - p) : (size_t)(nl - p);
		if (kl >= sizeof out[n].key)
			kl = sizeof out[n].key - 1;
		memcpy(out[n].key, p, kl);
		out[n].key[kl] = 0;
		out[n].val[0] = 0;
		if (colon) {
			size_t vl = (size_t)(nl - colon - 1);
			if (vl >= sizeof out[n].val)
				vl = sizeof out[n].val - 1;
			memcpy(out[n].val, colon + 1, vl);
			out[n].val[vl] = 0;
		}
		n++;
		p = *nl ? nl + 1 : nl;
	}
	return n;
}

static int kv_index(const struct kv *kv, int n, const char *key) {
	for (int i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return i;
	return -1;
}

static const char *kv_get(const struct kv *kv, int n, const char *key) {
	int i = kv_index(kv, n, key);
	return i < 0 ? NULL : kv[i].val;
}

/* Whether `keys` appear in this relative order (missing ones ignored);
 * the first out of order in *bad. */
static int in_order(const struct kv *kv, int n, const char *const *keys, int nk, const char **bad) {
	int last = -1;
	for (int i = 0; i < nk; i++) {
		int j = kv_index(kv, n, keys[i]);
		if (j < 0)
			continue;
		if (j < last) {
			*bad = keys[i];
			return 0;
		}
		last = j;
	}
	return 1;
}

/* "\t%8lu kB" (wider when the number needs it): the number, or -1. */
static long kb_value(const char *v, int tab) {
	if (tab && *v++ != '\t')
		return -1;
	if (!tab) {
		/* " %lu kB" after any padding. */
		while (*v == ' ')
			v++;
		size_t l = strlen(v);
		if (l < 4 || strcmp(v + l - 3, " kB") != 0)
			return -1;
		for (size_t i = 0; i < l - 3; i++)
			if (v[i] < '0' || v[i] > '9')
				return -1;
		return strtol(v, NULL, 10);
	}
	size_t len = strlen(v);
	if (len < 3 + 8 || strcmp(v + len - 3, " kB") != 0)
		return -1;
	size_t nl = len - 3, sp = 0;
	while (sp < nl && v[sp] == ' ')
		sp++;
	if (sp == nl || (nl > 8 && sp > 0))
		return -1;
	for (size_t i = sp; i < nl; i++)
		if (v[i] < '0' || v[i] > '9')
			return -1;
	return strtol(v + sp, NULL, 10);
}

/* ---- /proc/PID/stat ---- */

struct statf {
	int n;
	char f[64][64]; /* f[1] .. f[n], 1-based as in proc(5) */
};

static int parse_stat(const char *text, struct statf *s) {
	memset(s, 0, sizeof *s);
	const char *open = strchr(text, '('), *close = strrchr(text, ')');
	if (!open || !close || close < open || open == text || open[-1] != ' ')
		return -1;
	snprintf(s->f[1], sizeof s->f[1], "%.*s", (int)(open - text - 1), text);
	snprintf(s->f[2], sizeof s->f[2], "%.*s", (int)(close - open - 1), open + 1);
	s->n = 2;
	const char *p = close + 1;
	size_t len = strlen(p);
	if (len < 2 || p[0] != ' ' || p[len - 1] != '\n')
		return -1;
	p++;
	while (*p && *p != '\n' && s->n < 63) {
		const char *e = p;
		while (*e && *e != ' ' && *e != '\n')
			e++;
		s->n++;
		snprintf(s->f[s->n], sizeof s->f[s->n], "%.*s", (int)(e - p), p);
		p = *e == ' ' ? e + 1 : e;
	}
	return 0;
}

static unsigned long fu(const struct statf *s, int i) { return strtoul(s->f[i], NULL, 10); }
static long fl(const struct statf *s, int i) { return strtol(s->f[i], NULL, 10); }

/* ---- maps ---- */

struct mapl {
	unsigned long start, end, off, ino;
	unsigned maj, min;
	char perms[5];
	const char *path; /* into `raw`, "" when none */
	char raw[600];
};
static struct mapl mls[512];
static int nml;

/* A maps line as Linux prints it: the path (if any) from column 73. */
static void render_map(char *out, size_t cap, const struct mapl *m, const char *path) {
	int n = snprintf(out, cap, "%08lx-%08lx %s %08lx %02x:%02x %lu ", m->start, m->end, m->perms, m->off,
			 m->maj, m->min, m->ino);
	if (path && *path) {
		while (n < 72 && (size_t)n < cap - 1)
			out[n++] = ' ';
		snprintf(out + n, cap - (size_t)n, " %s", path);
	}
}

/* Parses the lines of `text`; the number of lines that do not scan. */
static int parse_maps(const char *text) {
	int bad = 0;
	nml = 0;
	for (const char *p = text; *p && nml < 512;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		struct mapl *m = &mls[nml++];
		memset(m, 0, sizeof *m);
		snprintf(m->raw, sizeof m->raw, "%.*s", (int)(nl - p), p);
		int used = 0;
		if (sscanf(m->raw, "%lx-%lx %4c %lx %x:%x %lu%n", &m->start, &m->end, m->perms, &m->off, &m->maj,
			   &m->min, &m->ino, &used) != 7) {
			bad++;
			m->path = "";
		} else {
			const char *r = m->raw + used;
			while (*r == ' ')
				r++;
			m->path = r;
		}
		p = *nl ? nl + 1 : nl;
	}
	return bad;
}

/* A maps line for messages: its permissions, offset and device, and
 * whether it names something (not its addresses, inode or path, which
 * differ between runs). */
static const char *noaddr(const char *line) {
	static char out[4][80];
	static int k;
	char *o = out[k++ & 3], perms[8] = "", off[20] = "", dev[16] = "";
	int used = 0;
	sscanf(line, "%*s %7s %19s %15s %*s%n", perms, off, dev, &used);
	const char *rest = used ? line + used : "";
	int sp = rest[0] == ' ';
	rest += strspn(rest, " ");
	snprintf(o, 80, "%s %s %s %s", perms, off, dev, !*rest ? "(no name)" : sp ? "(named)" : "?");
	return o;
}

static struct mapl *map_at(unsigned long start) {
	for (int i = 0; i < nml; i++)
		if (mls[i].start == start)
			return &mls[i];
	return NULL;
}

static struct mapl *map_named(const char *path) {
	for (int i = 0; i < nml; i++)
		if (strcmp(mls[i].path, path) == 0)
			return &mls[i];
	return NULL;
}

static struct mapl *map_containing(unsigned long a) {
	for (int i = 0; i < nml; i++)
		if (mls[i].start <= a && a < mls[i].end)
			return &mls[i];
	return NULL;
}

/* ---- setup ---- */

static void on_hup(int s) { (void)s; }

static void *thread_main(void *arg) {
	int i = (int)(long)arg;
	tids[i] = (pid_t)syscall(SYS_gettid);
	if (i == 0)
		prctl(PR_SET_NAME, "thr1", 0, 0, 0);
	char c;
	if (write(ready_pipe[1], "r", 1) != 1)
		return NULL;
	while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static pthread_t threads[2];

/* Three pages of `prot` between PROT_NONE guard pages. */
static unsigned long guarded(int prot) {
	char *g = mmap(NULL, 5 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED)
		return 0;
	char *m = mmap(g + PAGE, 3 * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	return m == MAP_FAILED ? 0 : (unsigned long)m;
}

static int setup(void) {
	alarm(60);
	for (int s = 1; s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP || (BIT(s) & LIBC_SIGS))
			continue;
		signal(s, SIG_DFL);
	}
	signal(SIGUSR2, SIG_IGN);
	signal(RT_IGN, SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(RT_CATCH, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, RT_BLOCK);
	sigprocmask(SIG_SETMASK, &set, NULL);

	umask(UMASK);
	prctl(PR_SET_NAME, COMM, 0, 0, 0);
	struct sched_param sp = {0};
	RAW3(SYS_sched_setscheduler, 0, SCHED_OTHER, &sp);
	setpriority(PRIO_PROCESS, 0, NICE);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max < NOFILE_SOFT ? rl.rlim_max : NOFILE_SOFT;
	setrlimit(RLIMIT_NOFILE, &rl);
	nofile_soft = (unsigned long)rl.rlim_cur;

	/* A [heap]: the brk grown by a page (musl's sbrk grows nothing). */
	long b = RAW1(SYS_brk, 0);
	RAW1(SYS_brk, b + (long)PAGE);

	ro_addr = guarded(PROT_READ);
	rw_addr = guarded(PROT_READ | PROT_WRITE);
	if (!ro_addr || !rw_addr)
		return -1;
	((volatile char *)rw_addr)[0] = 1;
	((volatile char *)rw_addr)[2 * PAGE] = 1;

	snprintf(file_path, sizeof file_path, "/tmp/procfmt-map.%d", (int)getpid());
	int fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	static char page[3 * PAGE];
	memset(page, 'p', sizeof page);
	if (write(fd, page, sizeof page) != (long)sizeof page)
		return -1;
	fstat(fd, &file_st);
	char *fm = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)PAGE);
	close(fd);
	if (fm == MAP_FAILED)
		return -1;
	file_addr = (unsigned long)fm;

	if (pipe(block_pipe) || pipe(ready_pipe))
		return -1;
	for (long i = 0; i < 2; i++)
		if (pthread_create(&threads[i], NULL, thread_main, (void *)i))
			return -1;
	char c[2];
	for (int got = 0; got < 2;) {
		long r = read(ready_pipe[0], c, (size_t)(2 - got));
		if (r <= 0)
			return -1;
		got += (int)r;
	}
	return 0;
}

static void teardown(void) {
	if (write(block_pipe[1], "xx", 2) != 2)
		return;
	pthread_join(threads[0], NULL);
	pthread_join(threads[1], NULL);
	unlink(file_path);
	unlink(fd_path);
}

/* ---- /proc/self/stat ---- */

static unsigned long start_brk_field;

static void stat_cases(void) {
	struct statf s;
	long n = slurp("/proc/self/stat", buf, sizeof buf);
	if (n <= 0 || parse_stat(buf, &s) < 0) {
		FAIL("stat_parse", "read %ld, does not parse", n);
		return;
	}
	OK("stat_parse");
	EXPECT("stat_52_fields", s.n, 52);
	CHECK("stat_comm_parens", strcmp(s.f[2], COMM) == 0, "comm \"%s\"", s.f[2]);
	CHECK("stat_pid", fl(&s, 1) == getpid(), "not getpid()");
	CHECK("stat_state_running", strcmp(s.f[3], "R") == 0, "state %s", s.f[3]);
	CHECK("stat_ppid", fl(&s, 4) == getppid(), "not getppid()");
	CHECK("stat_pgrp", fl(&s, 5) == getpgrp(), "not getpgrp()");
	CHECK("stat_session", fl(&s, 6) == getsid(0), "not getsid(0)");
	int nums = 1;
	for (int i = 3; i <= s.n; i++)
		if (i != 3 && !is_num(s.f[i]) && !(s.f[i][0] == '-' && is_num(s.f[i] + 1)))
			nums = 0;
	CHECK("stat_fields_decimal", nums, "a field is not a number");
	EXPECT("stat_priority", fl(&s, 18), 20 + NICE);
	EXPECT("stat_nice", fl(&s, 19), NICE);
	EXPECT("stat_num_threads", fl(&s, 20), 3);
	CHECK("stat_itrealvalue_zero", strcmp(s.f[21], "0") == 0, "%s", s.f[21]);
	CHECK("stat_starttime", is_num(s.f[22]), "%s", s.f[22]);
	CHECK("stat_vsize_positive", is_num(s.f[23]) && fu(&s, 23) > 0, "not a positive number");
	/* Not > 0: Linux's RSS counters are per-CPU and read without
	 * summing, so a small process may show 0. */
	CHECK("stat_rss_number", is_num(s.f[24]), "%s", s.f[24]);
	struct rlimit rl;
	getrlimit(RLIMIT_RSS, &rl);
	CHECK("stat_rsslim", fu(&s, 25) == (unsigned long)rl.rlim_cur, "differs from RLIMIT_RSS");
	unsigned long m = (unsigned long)&stat_cases;
	CHECK("stat_code_range", fu(&s, 26) <= m && m < fu(&s, 27), "code not between startcode and endcode");
	CHECK("stat_startstack_argc", fu(&s, 28) == (unsigned long)(g_argv - 1), "not the address of argc");
	CHECK("stat_kstk_zero", fu(&s, 29) == 0 && fu(&s, 30) == 0, "%s %s", s.f[29], s.f[30]);
	/* Decimal, and only signals 1-31: Linux masks these four with
	 * 0x7fffffff, so the real-time signals set up (40-42) do not show. */
	EXPECT("stat_signal_pending", fu(&s, 31), 0);
	EXPECT("stat_blocked", fu(&s, 32), BIT(SIGUSR1));
	EXPECT("stat_sigignore", fu(&s, 33), BIT(SIGUSR2));
	EXPECT("stat_sigcatch", fu(&s, 34), BIT(SIGHUP));
	CHECK("stat_wchan_zero", strcmp(s.f[35], "0") == 0, "%s", s.f[35]);
	CHECK("stat_nswap_zero", fu(&s, 36) == 0 && fu(&s, 37) == 0, "%s %s", s.f[36], s.f[37]);
	cpu_set_t cs;
	CPU_ZERO(&cs);
	sched_getaffinity(0, sizeof cs, &cs);
	CHECK("stat_processor_allowed", fu(&s, 39) < CPU_SETSIZE && CPU_ISSET(fu(&s, 39), &cs),
	      "not a CPU of the affinity mask");
	CHECK("stat_rt_priority_policy", fu(&s, 40) == 0 && fu(&s, 41) == 0, "%s %s", s.f[40], s.f[41]);
	start_brk_field = fu(&s, 47);
	unsigned long brk = (unsigned long)RAW1(SYS_brk, 0);
	CHECK("stat_start_brk", start_brk_field > 0 && start_brk_field < brk, "start_brk not below brk");
	char **e = g_envp;
	while (*e)
		e++;
	unsigned long arg_end = (unsigned long)g_argv[g_argc - 1] + strlen(g_argv[g_argc - 1]) + 1;
	CHECK("stat_arg_start_end", fu(&s, 48) == (unsigned long)g_argv[0] && fu(&s, 49) == arg_end,
	      "not argv's strings");
	unsigned long env_end = e == g_envp ? 0 : (unsigned long)e[-1] + strlen(e[-1]) + 1;
	CHECK("stat_env_start_end", e == g_envp || (fu(&s, 50) == (unsigned long)g_envp[0] && fu(&s, 51) == env_end),
	      "not envp's strings");
	EXPECT("stat_exit_code_zero", fl(&s, 52), 0);

	/* The threads' own stat files. */
	int good = 1, threads = 1, comm = 1;
	for (int i = 0; i < 2; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tids[i]);
		struct statf t;
		if (slurp(path, buf, sizeof buf) <= 0 || parse_stat(buf, &t) < 0 || t.n != 52) {
			good = threads = comm = 0;
			continue;
		}
		if (fl(&t, 1) != tids[i] || fl(&t, 4) != getppid())
			good = 0;
		if (fl(&t, 20) != 3)
			threads = 0;
		if (strcmp(t.f[2], i == 0 ? "thr1" : COMM) != 0)
			comm = 0;
	}
	CHECK("task_stat_pid_is_tid", good, "pid field not the thread's id");
	CHECK("task_stat_num_threads", threads, "not 3");
	CHECK("task_stat_comm", comm, "not the thread's own name");
}

/* ---- /proc/self/task ---- */

static void task_cases(void) {
	DIR *d = opendir("/proc/self/task");
	int n = 0, seen = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		int t = atoi(de->d_name);
		if (t == getpid())
			seen |= 1;
		else if (t == tids[0])
			seen |= 2;
		else if (t == tids[1])
			seen |= 4;
	}
	if (d)
		closedir(d);
	CHECK("task_list", n == 3 && seen == 7, "%d entries, seen %#x", n, seen);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tids[0]);
	long r = slurp(path, buf, sizeof buf);
	CHECK("task_comm_renamed", r > 0 && strcmp(buf, "thr1\n") == 0, "\"%s\"", r > 0 ? buf : "");
	snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tids[1]);
	r = slurp(path, buf, sizeof buf);
	CHECK("task_comm_inherited", r > 0 && strcmp(buf, COMM "\n") == 0, "\"%s\"", r > 0 ? buf : "");
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tids[1]);
	r = slurp(path, buf, sizeof buf);
	int k = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	const char *pid = kv_get(kvs, k, "Pid"), *tgid = kv_get(kvs, k, "Tgid");
	CHECK("task_status_ids", pid && tgid && atoi(pid) == tids[1] && atoi(tgid) == getpid(),
	      "Pid not the thread's id or Tgid not getpid()");
}

/* ---- /proc/self/status ---- */

static const char *const status_keys[] = {
	"Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid", "Gid", "FDSize", "Groups",
	"NStgid", "NSpid", "NSpgid", "NSsid", "VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon",
	"RssFile", "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap", "Threads", "SigQ",
	"SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
	"NoNewPrivs", "Seccomp", "Cpus_allowed", "Cpus_allowed_list", "voluntary_ctxt_switches",
	"nonvoluntary_ctxt_switches",
};
#define NSTATUS (int)(sizeof status_keys / sizeof status_keys[0])

/* The last tab-separated number of an NS* line. */
static long last_num(const char *v) {
	const char *t = strrchr(v, '\t');
	return t && is_num(t + 1) ? atol(t + 1) : -1;
}

static unsigned long hexmask(const char *v) {
	return strtoul(v, NULL, 16);
}

/* The value after the tab, or "" */
static const char *tv(const char *v) {
	return v && v[0] == '\t' ? v + 1 : "";
}

static void cpu_list(char *out, size_t cap, const cpu_set_t *cs) {
	size_t n = 0;
	out[0] = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, cs))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, cs))
			e++;
		n += (size_t)snprintf(out + n, cap - n, n ? ",%d" : "%d", c);
		if (e > c)
			n += (size_t)snprintf(out + n, cap - n, "-%d", e);
		c = e;
	}
}

static void status_cases(void) {
	long r = slurp("/proc/self/status", buf, sizeof buf);
	int n = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	for (int i = 0; i < NSTATUS; i++) {
		char name[80];
		snprintf(name, sizeof name, "status_has_%s", status_keys[i]);
		CHECK(name, kv_get(kvs, n, status_keys[i]) != NULL, "missing");
	}
	const char *bad = "";
	CHECK("status_order", in_order(kvs, n, status_keys, NSTATUS, &bad), "%s out of order", bad);
	int tabs = 1;
	for (int i = 0; i < n; i++)
		if (kvs[i].val[0] != '\t')
			tabs = 0;
	CHECK("status_key_colon_tab", tabs && n > 0, "a line is not \"Key:\\tvalue\"");

	CHECK("status_name", strcmp(tv(kv_get(kvs, n, "Name")), COMM) == 0, "\"%s\"", tv(kv_get(kvs, n, "Name")));
	char want[400];
	snprintf(want, sizeof want, "%04o", UMASK);
	CHECK("status_umask", strcmp(tv(kv_get(kvs, n, "Umask")), want) == 0, "\"%s\"",
	      tv(kv_get(kvs, n, "Umask")));
	CHECK("status_state", strcmp(tv(kv_get(kvs, n, "State")), "R (running)") == 0, "\"%s\"",
	      tv(kv_get(kvs, n, "State")));
	CHECK("status_tgid_pid", atol(tv(kv_get(kvs, n, "Tgid"))) == getpid() &&
				       atol(tv(kv_get(kvs, n, "Pid"))) == getpid(),
	      "not getpid");
	CHECK("status_ppid", atol(tv(kv_get(kvs, n, "PPid"))) == getppid(), "not getppid()");
	CHECK("status_tracerpid", strcmp(tv(kv_get(kvs, n, "TracerPid")), "0") == 0, "\"%s\"",
	      tv(kv_get(kvs, n, "TracerPid")));
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	long fsu = RAW1(SYS_setfsuid, -1), fsg = RAW1(SYS_setfsgid, -1);
	snprintf(want, sizeof want, "\t%u\t%u\t%u\t%ld", ru, eu, su, fsu);
	CHECK("status_uid", strcmp(kv_get(kvs, n, "Uid") ?: "", want) == 0, "\"%s\"", kv_get(kvs, n, "Uid") ?: "");
	snprintf(want, sizeof want, "\t%u\t%u\t%u\t%ld", rg, eg, sg, fsg);
	CHECK("status_gid", strcmp(kv_get(kvs, n, "Gid") ?: "", want) == 0, "\"%s\"", kv_get(kvs, n, "Gid") ?: "");
	CHECK("status_fdsize", is_num(tv(kv_get(kvs, n, "FDSize"))), "\"%s\"", tv(kv_get(kvs, n, "FDSize")));
	gid_t groups[256];
	int ng = getgroups(256, groups);
	size_t w = (size_t)snprintf(want, sizeof want, "\t");
	for (int i = 0; i < ng; i++)
		w += (size_t)snprintf(want + w, sizeof want - w, i ? " %u" : "%u", groups[i]);
	snprintf(want + w, sizeof want - w, " ");
	CHECK("status_groups", strcmp(kv_get(kvs, n, "Groups") ?: "", want) == 0, "\"%s\"",
	      kv_get(kvs, n, "Groups") ?: "");
	CHECK("status_ns_ids", last_num(kv_get(kvs, n, "NStgid") ?: "") == getpid() &&
				     last_num(kv_get(kvs, n, "NSpid") ?: "") == getpid() &&
				     last_num(kv_get(kvs, n, "NSpgid") ?: "") == getpgrp() &&
				     last_num(kv_get(kvs, n, "NSsid") ?: "") == getsid(0),
	      "last NS* values not getpid/getpgrp/getsid");

	static const char *const vm[] = {"VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon",
					 "RssFile", "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE",
					 "VmSwap"};
	const char *badvm = NULL;
	for (size_t i = 0; i < sizeof vm / sizeof vm[0]; i++)
		if (kb_value(kv_get(kvs, n, vm[i]) ?: "", 1) < 0)
			badvm = vm[i];
	CHECK("status_vm_kb_format", !badvm, "%s is not \"\\t%%8lu kB\"", badvm);
	CHECK("status_vmlck_vmpin_zero", kb_value(kv_get(kvs, n, "VmLck") ?: "", 1) == 0 &&
					       kb_value(kv_get(kvs, n, "VmPin") ?: "", 1) == 0,
	      "not 0 kB");
	long peak = kb_value(kv_get(kvs, n, "VmPeak") ?: "", 1), size = kb_value(kv_get(kvs, n, "VmSize") ?: "", 1);
	long hwm = kb_value(kv_get(kvs, n, "VmHWM") ?: "", 1), rss = kb_value(kv_get(kvs, n, "VmRSS") ?: "", 1);
	CHECK("status_vm_sizes", peak >= size && size > 0 && hwm >= rss, "VmPeak < VmSize or VmHWM < VmRSS");
	CHECK("status_threads", strcmp(tv(kv_get(kvs, n, "Threads")), "3") == 0, "\"%s\"",
	      tv(kv_get(kvs, n, "Threads")));
	struct rlimit rl;
	getrlimit(RLIMIT_SIGPENDING, &rl);
	unsigned long q = 0, qmax = 0;
	char tail = 0;
	CHECK("status_sigq", sscanf(tv(kv_get(kvs, n, "SigQ")), "%lu/%lu%c", &q, &qmax, &tail) == 2 &&
				    qmax == (unsigned long)rl.rlim_cur,
	      "not \"queued/RLIMIT_SIGPENDING\"");
	static const char *const masks[] = {"SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
					    "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	const char *badmask = NULL;
	for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++)
		if (!is_hex(tv(kv_get(kvs, n, masks[i])), 16))
			badmask = masks[i];
	CHECK("status_masks_16_hex", !badmask, "%s: \"%s\"", badmask, badmask ? tv(kv_get(kvs, n, badmask)) : "");
	CHECK("status_sigpnd_zero", hexmask(tv(kv_get(kvs, n, "SigPnd"))) == 0 &&
					  hexmask(tv(kv_get(kvs, n, "ShdPnd"))) == 0,
	      "something pending");
	unsigned long blk = hexmask(tv(kv_get(kvs, n, "SigBlk"))) & ~LIBC_SIGS;
	unsigned long ign = hexmask(tv(kv_get(kvs, n, "SigIgn"))) & ~LIBC_SIGS;
	unsigned long cgt = hexmask(tv(kv_get(kvs, n, "SigCgt"))) & ~LIBC_SIGS;
	CHECK("status_sigblk", blk == (BIT(SIGUSR1) | BIT(RT_BLOCK)), "%016lx", blk);
	CHECK("status_sigign", ign == (BIT(SIGUSR2) | BIT(RT_IGN)), "%016lx", ign);
	CHECK("status_sigcgt", cgt == (BIT(SIGHUP) | BIT(RT_CATCH)), "%016lx", cgt);
	struct {
		unsigned version;
		int pid;
	} hdr = {0x20080522, 0};
	struct {
		unsigned eff, prm, inh;
	} data[2];
	memset(data, 0, sizeof data);
	long cr = RAW2(SYS_capget, &hdr, data);
	unsigned long eff = (unsigned long)data[1].eff << 32 | data[0].eff;
	unsigned long prm = (unsigned long)data[1].prm << 32 | data[0].prm;
	unsigned long inh = (unsigned long)data[1].inh << 32 | data[0].inh;
	CHECK("status_caps_capget", cr == 0 && hexmask(tv(kv_get(kvs, n, "CapEff"))) == eff &&
					  hexmask(tv(kv_get(kvs, n, "CapPrm"))) == prm &&
					  hexmask(tv(kv_get(kvs, n, "CapInh"))) == inh,
	      "differs from capget");
	CHECK("status_nonewprivs_0", strcmp(tv(kv_get(kvs, n, "NoNewPrivs")), "0") == 0, "\"%s\"",
	      tv(kv_get(kvs, n, "NoNewPrivs")));
	const char *sc = tv(kv_get(kvs, n, "Seccomp"));
	CHECK("status_seccomp_format", strlen(sc) == 1 && sc[0] >= '0' && sc[0] <= '2', "\"%s\"", sc);

	cpu_set_t cs;
	CPU_ZERO(&cs);
	sched_getaffinity(0, sizeof cs, &cs);
	/* Cpus_allowed: hex in 32-bit groups, separated by commas. */
	const char *ca = tv(kv_get(kvs, n, "Cpus_allowed"));
	int okmask = *ca != 0, bit = 0;
	for (const char *p = ca + strlen(ca); okmask && p > ca;) {
		char c = *--p;
		if (c == ',')
			continue;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0) {
			okmask = 0;
			break;
		}
		for (int k = 0; k < 4; k++, bit++)
			if (((d >> k) & 1) != (bit < CPU_SETSIZE && CPU_ISSET(bit, &cs)))
				okmask = 0;
	}
	for (; bit < CPU_SETSIZE; bit++)
		if (CPU_ISSET(bit, &cs))
			okmask = 0;
	CHECK("status_cpus_allowed", okmask, "\"%s\" is not the affinity mask", ca);
	cpu_list(want, sizeof want, &cs);
	CHECK("status_cpus_allowed_list", strcmp(tv(kv_get(kvs, n, "Cpus_allowed_list")), want) == 0,
	      "\"%s\", want \"%s\"", tv(kv_get(kvs, n, "Cpus_allowed_list")), want);
	CHECK("status_ctxt_switches", is_num(tv(kv_get(kvs, n, "voluntary_ctxt_switches"))) &&
					    is_num(tv(kv_get(kvs, n, "nonvoluntary_ctxt_switches"))),
	      "not numbers");
	CHECK("status_last_line", n > 0 && strcmp(kvs[n - 1].key, "nonvoluntary_ctxt_switches") == 0 &&
					buf[r - 1] == '\n',
	      "last key %s", n > 0 ? kvs[n - 1].key : "-");
}

/* ---- /proc/self/statm ---- */

static void statm_cases(void) {
	long r = slurp("/proc/self/statm", buf, sizeof buf);
	long r2 = slurp("/proc/self/status", buf2, sizeof buf2);
	unsigned long v[8];
	char nl = 0;
	int k = r > 0 ? sscanf(buf, "%lu %lu %lu %lu %lu %lu %lu%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			       &v[6], &nl)
		      : 0;
	CHECK("statm_7_numbers", k == 8 && nl == '\n' && buf[r - 1] == '\n' && strchr(buf, '\n') == buf + r - 1,
	      "not 7 numbers on one line");
	CHECK("statm_size_ge_resident", k == 8 && v[0] >= v[1] && v[0] > 0, "size < resident");
	CHECK("statm_lib_dt_zero", k == 8 && v[4] == 0 && v[6] == 0, "lib %lu dt %lu", v[4], v[6]);
	int n = r2 > 0 ? parse_kv(buf2, NULL, kvs, 160) : 0;
	CHECK("statm_size_vmsize", k == 8 && (long)(v[0] * 4) == kb_value(kv_get(kvs, n, "VmSize") ?: "", 1),
	      "statm size differs from VmSize");
}

/* ---- /proc/self/maps ---- */

static void maps_cases(void) {
	long r = slurp("/proc/self/maps", mapsbuf, sizeof mapsbuf);
	int bad = r > 0 ? parse_maps(mapsbuf) : -1;
	CHECK("maps_scan", bad == 0 && nml > 0 && mapsbuf[r - 1] == '\n', "%d lines do not scan", bad);
	int fmt = 1, perms = 1, sorted = 1;
	char line[700];
	for (int i = 0; i < nml; i++) {
		struct mapl *m = &mls[i];
		render_map(line, sizeof line, m, m->path);
		if (strcmp(line, m->raw) != 0 && fmt) {
			fmt = 0;
			FAIL("maps_line_format", "\"%s\"", noaddr(m->raw));
		}
		const char *p = m->perms;
		if (!((p[0] == 'r' || p[0] == '-') && (p[1] == 'w' || p[1] == '-') && (p[2] == 'x' || p[2] == '-') &&
		      (p[3] == 'p' || p[3] == 's')))
			perms = 0;
		if (m->start >= m->end || (i > 0 && mls[i - 1].end > m->start))
			sorted = 0;
		if ((m->start | m->end) & (PAGE - 1))
			sorted = 0;
	}
	if (fmt)
		OK("maps_line_format");
	CHECK("maps_perms", perms, "bad permissions");
	CHECK("maps_sorted_disjoint", sorted, "lines overlap or are out of order");

	struct mapl *m = map_at(ro_addr);
	CHECK("maps_anon_ro", m && m->end == ro_addr + 3 * PAGE && strcmp(m->perms, "r--p") == 0 && m->off == 0 &&
				      m->maj == 0 && m->min == 0 && m->ino == 0 && !*m->path,
	      "\"%s\"", m ? noaddr(m->raw) : "no line");
	m = map_at(rw_addr);
	CHECK("maps_anon_rw", m && m->end == rw_addr + 3 * PAGE && strcmp(m->perms, "rw-p") == 0 && m->off == 0 &&
				      m->ino == 0 && !*m->path,
	      "\"%s\"", m ? noaddr(m->raw) : "no line");
	/* (A guard may merge with a neighbouring PROT_NONE mapping.) */
	m = map_containing(ro_addr - PAGE);
	struct mapl *m2 = map_containing(ro_addr + 3 * PAGE);
	CHECK("maps_guards", m && m2 && m->end == ro_addr && strcmp(m->perms, "---p") == 0 &&
				     m2->start == ro_addr + 3 * PAGE && strcmp(m2->perms, "---p") == 0,
	      "PROT_NONE guards not separate lines");
	char anon[64];
	snprintf(anon, sizeof anon, "%08lx-%08lx r--p 00000000 00:00 0 ", ro_addr, ro_addr + 3 * PAGE);
	m = map_at(ro_addr);
	CHECK("maps_anon_trailing_space", m && strcmp(m->raw, anon) == 0, "\"%s\"",
	      m ? noaddr(m->raw) : "no line");

	m = map_at(file_addr);
	CHECK("maps_file_shared", m && m->end == file_addr + PAGE && strcmp(m->perms, "rw-s") == 0 &&
					  m->off == PAGE && strcmp(m->path, file_path) == 0,
	      "\"%s\"", m ? noaddr(m->raw) : "no line");
	CHECK("maps_file_inode", m && m->ino == (unsigned long)file_st.st_ino, "inode differs from st_ino");

	char exe[512] = {0};
	long el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	m = el > 0 ? map_named(exe) : NULL;
	CHECK("maps_exe", m && m->off == 0 && m->ino > 0, "no mapping of %s at offset 0", exe);
	m = map_containing((unsigned long)&stat_cases);
	CHECK("maps_exe_code", m && strcmp(m->path, exe) == 0 && m->perms[2] == 'x',
	      "code not in an x mapping of the executable");

	int local = 0;
	m = map_named("[stack]");
	CHECK("maps_stack", m && m->start <= (unsigned long)&local && (unsigned long)&local < m->end &&
				    strcmp(m->perms, "rw-p") == 0,
	      "no [stack] around a local");
	unsigned long brk = (unsigned long)RAW1(SYS_brk, 0);
	/* [heap] names every mapping between the start of the brk and the
	 * brk (musl's malloc puts PROT_NONE guards in it). */
	unsigned long hlo = 0, hhi = 0;
	int contiguous = 1;
	for (int i = 0; i < nml; i++) {
		if (strcmp(mls[i].path, "[heap]") != 0)
			continue;
		if (!hlo)
			hlo = mls[i].start;
		else if (mls[i].start != hhi)
			contiguous = 0;
		hhi = mls[i].end;
	}
	CHECK("maps_heap", hlo && contiguous && hhi == ((brk + PAGE - 1) & ~(PAGE - 1)) && hlo <= start_brk_field,
	      "no [heap] from the start of the brk to the brk");
	unsigned long eh = getauxval(AT_SYSINFO_EHDR);
	m = map_named("[vdso]");
	CHECK("maps_vdso", m && m->start == eh && strcmp(m->perms, "r-xp") == 0, "no [vdso] at AT_SYSINFO_EHDR");
	m = map_named("[vvar]");
	CHECK("maps_vvar", m && m->end <= eh && m->perms[0] == 'r' && m->perms[1] == '-',
	      "no [vvar] below the vDSO");
}

/* ---- /proc/self/smaps, smaps_rollup ---- */

static const char *const smaps_keys[] = {
	"Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty",
	"Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "KSM", "LazyFree", "AnonHugePages",
	"ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap", "SwapPss", "Locked",
	"THPeligible", "VmFlags",
};
#define NSMAPS (int)(sizeof smaps_keys / sizeof smaps_keys[0])

static const char *const rollup_keys[] = {
	"Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_File", "Pss_Shmem", "Shared_Clean", "Shared_Dirty",
	"Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "KSM", "LazyFree", "AnonHugePages",
	"ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap", "SwapPss", "Locked",
};
#define NROLLUP (int)(sizeof rollup_keys / sizeof rollup_keys[0])

/* The smaps block whose header starts at `addr`: its header line in
 * `hdr`, its key lines parsed into kvs; the number of keys, or -1. */
static int smaps_block(unsigned long addr, char *hdr, size_t cap) {
	char want[40];
	int wl = snprintf(want, sizeof want, "%08lx-", addr);
	for (const char *p = smapsbuf; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		if (strncmp(p, want, (size_t)wl) == 0) {
			snprintf(hdr, cap, "%.*s", (int)(nl - p), p);
			/* The block ends at the next header (a line with no ':' key). */
			const char *e = nl + 1;
			while (*e) {
				const char *n2 = strchr(e, '\n');
				const char *c = strchr(e, ':');
				const char *sp = strchr(e, ' ');
				if (!n2 || !c || c > n2 || (sp && sp < c))
					break;
				e = n2 + 1;
			}
			return parse_kv(nl + 1, e, kvs, 160);
		}
		p = nl + 1;
	}
	return -1;
}

/* Drops the keys that depend on the CPU or configuration. */
static int drop_optional(int n) {
	int j = 0;
	for (int i = 0; i < n; i++)
		if (strcmp(kvs[i].key, "ProtectionKey") != 0)
			kvs[j++] = kvs[i];
	return j;
}

static int keys_exactly(int n, const char *const *keys, int nk, char *why, size_t cap) {
	for (int i = 0; i < nk || i < n; i++) {
		if (i >= n || i >= nk || strcmp(kvs[i].key, keys[i]) != 0) {
			snprintf(why, cap, "key %d is %s, want %s", i, i < n ? kvs[i].key : "(end)",
				 i < nk ? keys[i] : "(end)");
			return 0;
		}
	}
	return 1;
}

/* VmFlags' tokens, but "sd" (soft-dirty, CONFIG_MEM_SOFT_DIRTY). */
static void vmflags(int n, char *out, size_t cap) {
	const char *v = kv_get(kvs, n, "VmFlags");
	out[0] = 0;
	if (!v)
		return;
	size_t o = 0;
	char tok[8];
	int used;
	for (const char *p = v; sscanf(p, " %7s%n", tok, &used) == 1; p += used)
		if (strcmp(tok, "sd") != 0)
			o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " " : "", tok);
}

static long kbkey(int n, const char *key) {
	return kb_value(kv_get(kvs, n, key) ?: "", 0);
}

static void smaps_cases(void) {
	long r = slurp("/proc/self/maps", mapsbuf, sizeof mapsbuf);
	long r2 = slurp("/proc/self/smaps", smapsbuf, sizeof smapsbuf);
	if (r <= 0 || r2 <= 0) {
		FAIL("smaps_read", "%ld %ld", r, r2);
		return;
	}
	parse_maps(mapsbuf);
	char hdr[700], why[200];

	/* The read-only mapping, never touched. */
	int n = smaps_block(ro_addr, hdr, sizeof hdr);
	struct mapl *m = map_at(ro_addr);
	CHECK("smaps_header_is_maps_line", n > 0 && m && strcmp(hdr, m->raw) == 0, "\"%s\"",
	      n > 0 ? noaddr(hdr) : "none");
	n = drop_optional(n);
	CHECK("smaps_keys", keys_exactly(n, smaps_keys, NSMAPS, why, sizeof why), "%s", why);
	int fmt = 1;
	for (int i = 0; i < n; i++) {
		if (strcmp(kvs[i].key, "VmFlags") == 0)
			continue;
		char want[80];
		const char *v = kvs[i].val;
		int pad = 16 - (int)strlen(kvs[i].key) - 1;
		long num = strcmp(kvs[i].key, "THPeligible") == 0 ? strtol(v, NULL, 10) : kb_value(v, 0);
		if (strcmp(kvs[i].key, "THPeligible") == 0)
			snprintf(want, sizeof want, "%*s%8ld", pad, "", num);
		else
			snprintf(want, sizeof want, "%*s%8ld kB", pad, "", num);
		if (num < 0 || strcmp(want, v) != 0)
			fmt = 0;
	}
	CHECK("smaps_value_format", fmt, "a line is not \"Key:\" padded to 16 then %%8lu kB");
	CHECK("smaps_size", kbkey(n, "Size") == 12, "Size %ld", kbkey(n, "Size"));
	CHECK("smaps_page_sizes", kbkey(n, "KernelPageSize") == 4 && kbkey(n, "MMUPageSize") == 4, "not 4 kB");
	CHECK("smaps_untouched_rss_zero", kbkey(n, "Rss") == 0 && kbkey(n, "Pss") == 0 && kbkey(n, "Anonymous") == 0,
	      "Rss %ld", kbkey(n, "Rss"));
	CHECK("smaps_thpeligible_zero", strcmp(kv_get(kvs, n, "THPeligible") ?: "", "           0") == 0, "\"%s\"",
	      kv_get(kvs, n, "THPeligible") ?: "");
	char fl[200];
	vmflags(n, fl, sizeof fl);
	CHECK("smaps_vmflags_ro", strcmp(fl, "rd mr mw me") == 0, "\"%s\"", fl);
	const char *vf = kv_get(kvs, n, "VmFlags");
	size_t vl = vf ? strlen(vf) : 0;
	CHECK("smaps_vmflags_format", vf && vl > 2 && vf[0] == ' ' && vf[vl - 1] == ' ', "\"%s\"", vf ? vf : "");

	/* The read-write mapping, two of its pages written. */
	n = drop_optional(smaps_block(rw_addr, hdr, sizeof hdr));
	CHECK("smaps_rw_keys", keys_exactly(n, smaps_keys, NSMAPS, why, sizeof why), "%s", why);
	CHECK("smaps_touched_rss", kbkey(n, "Rss") == 8, "Rss %ld", kbkey(n, "Rss"));
	CHECK("smaps_touched_pss", kbkey(n, "Pss") == 8 && kbkey(n, "Pss_Dirty") == 8, "Pss %ld", kbkey(n, "Pss"));
	CHECK("smaps_touched_anonymous", kbkey(n, "Anonymous") == 8, "Anonymous %ld", kbkey(n, "Anonymous"));
	CHECK("smaps_touched_private_dirty", kbkey(n, "Private_Dirty") == 8 && kbkey(n, "Private_Clean") == 0,
	      "Private_Dirty %ld", kbkey(n, "Private_Dirty"));
	CHECK("smaps_touched_not_shared", kbkey(n, "Shared_Clean") == 0 && kbkey(n, "Shared_Dirty") == 0,
	      "shared pages");
	CHECK("smaps_locked_zero", kbkey(n, "Locked") == 0, "Locked %ld", kbkey(n, "Locked"));
	vmflags(n, fl, sizeof fl);
	CHECK("smaps_vmflags_rw", strcmp(fl, "rd wr mr mw me ac") == 0, "\"%s\"", fl);

	/* The shared file mapping. */
	n = drop_optional(smaps_block(file_addr, hdr, sizeof hdr));
	m = map_at(file_addr);
	CHECK("smaps_file_header", n > 0 && m && strcmp(hdr, m->raw) == 0, "\"%s\"", n > 0 ? noaddr(hdr) : "none");
	vmflags(n, fl, sizeof fl);
	CHECK("smaps_vmflags_shared", strcmp(fl, "rd wr sh mr mw me ms") == 0, "\"%s\"", fl);

	/* One header for each maps line, in the same order. */
	int same = 1, k = 0;
	for (const char *p = smapsbuf; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		const char *c = strchr(p, ':'), *sp = strchr(p, ' ');
		if (!(c && c < nl && !(sp && sp < c))) {
			if (k >= nml || strncmp(p, mls[k].raw, (size_t)(nl - p)) != 0 || strlen(mls[k].raw) != (size_t)(nl - p))
				same = 0;
			k++;
		}
		p = nl + 1;
	}
	CHECK("smaps_headers_are_maps", same && k == nml, "%d headers, %d maps lines", k, nml);

	/* smaps_rollup */
	r = slurp("/proc/self/smaps_rollup", buf, sizeof buf);
	const char *nl = r > 0 ? strchr(buf, '\n') : NULL;
	if (!nl) {
		FAIL("smaps_rollup_header", "read %ld", r);
		return;
	}
	unsigned long lo = 0, hi = 0;
	sscanf(buf, "%lx-%lx", &lo, &hi);
	struct mapl roll = {.start = lo, .end = hi, .perms = "---p"};
	char want[200];
	render_map(want, sizeof want, &roll, "[rollup]");
	size_t hl = (size_t)(nl - buf);
	CHECK("smaps_rollup_header", strlen(want) == hl && strncmp(buf, want, hl) == 0,
	      "\"%s\"", noaddr(buf));
	int last = nml - 1;
	if (last > 0 && strcmp(mls[last].path, "[vsyscall]") == 0)
		last--;
	CHECK("smaps_rollup_range", nml > 0 && lo == mls[0].start && hi == mls[last].end,
	      "not from the first mapping to the last");
	n = parse_kv(nl + 1, NULL, kvs, 160);
	CHECK("smaps_rollup_keys", keys_exactly(n, rollup_keys, NROLLUP, why, sizeof why), "%s", why);
	fmt = 1;
	for (int i = 0; i < n; i++) {
		int pad = 16 - (int)strlen(kvs[i].key) - 1;
		long num = kb_value(kvs[i].val, 0);
		snprintf(want, sizeof want, "%*s%8ld kB", pad, "", num);
		if (num < 0 || strcmp(want, kvs[i].val) != 0)
			fmt = 0;
	}
	CHECK("smaps_rollup_value_format", fmt, "a line is not \"Key:\" padded to 16 then %%8lu kB");
	CHECK("smaps_rollup_rss",
	      kbkey(n, "Rss") >= 8 && kbkey(n, "Anonymous") >= 8 && kbkey(n, "Rss") >= kbkey(n, "Pss"),
	      "Rss %ld", kbkey(n, "Rss"));
	/* Each is rounded down on its own, so the sum may fall short by 2. */
	long sum = kbkey(n, "Pss_Anon") + kbkey(n, "Pss_File") + kbkey(n, "Pss_Shmem");
	CHECK("smaps_rollup_pss_split", sum <= kbkey(n, "Pss") && kbkey(n, "Pss") <= sum + 2,
	      "Pss not Pss_Anon + Pss_File + Pss_Shmem");
}

/* ---- /proc/self/auxv ---- */

static void auxv_cases(void) {
	long n = slurp("/proc/self/auxv", buf, sizeof buf);
	CHECK("auxv_size_multiple_16", n > 0 && n % 16 == 0, "size %ld", n);
	unsigned long *a = (unsigned long *)buf;
	long pairs = n > 0 ? n / 16 : 0;
	CHECK("auxv_ends_with_null", pairs > 0 && a[2 * (pairs - 1)] == AT_NULL, "last type not AT_NULL");
	int unique = 1, nulls = 0;
	for (long i = 0; i < pairs; i++) {
		if (a[2 * i] == AT_NULL)
			nulls++;
		for (long j = 0; j < i; j++)
			if (a[2 * i] == a[2 * j])
				unique = 0;
	}
	CHECK("auxv_types_unique", unique && nulls == 1, "a type repeats");
	char **e = g_envp;
	while (*e)
		e++;
	unsigned long *st = (unsigned long *)(e + 1);
	long sn = 0;
	while (st[2 * sn] != AT_NULL)
		sn++;
	sn++;
	CHECK("auxv_is_initial_stack", sn == pairs && memcmp(st, a, (size_t)n) == 0, "differs from the stack's");
	unsigned long v[64] = {0}, have[64] = {0};
	for (long i = 0; i < pairs; i++)
		if (a[2 * i] < 64) {
			v[a[2 * i]] = a[2 * i + 1];
			have[a[2 * i]] = 1;
		}
	CHECK("auxv_pagesz", have[AT_PAGESZ] && v[AT_PAGESZ] == 4096, "%lu", v[AT_PAGESZ]);
	CHECK("auxv_ids", have[AT_UID] && have[AT_EUID] && have[AT_GID] && have[AT_EGID] && v[AT_UID] == getuid() &&
				  v[AT_EUID] == geteuid() && v[AT_GID] == getgid() && v[AT_EGID] == getegid(),
	      "ids differ");
	CHECK("auxv_secure_zero", have[AT_SECURE] && v[AT_SECURE] == 0, "%lu", v[AT_SECURE]);
	CHECK("auxv_entry", have[AT_ENTRY] && v[AT_ENTRY] == getauxval(AT_ENTRY), "differs from getauxval");
	CHECK("auxv_phdr", have[AT_PHDR] && v[AT_PHDR] == getauxval(AT_PHDR) && have[AT_PHENT] && v[AT_PHENT] == 56,
	      "differs from getauxval");
	CHECK("auxv_random", have[AT_RANDOM] && v[AT_RANDOM] == getauxval(AT_RANDOM), "differs from getauxval");
	CHECK("auxv_execfn", have[AT_EXECFN] && v[AT_EXECFN] == getauxval(AT_EXECFN), "differs from getauxval");
	CHECK("auxv_sysinfo_ehdr", v[AT_SYSINFO_EHDR] == getauxval(AT_SYSINFO_EHDR), "differs from getauxval");
	/* Not getauxval's: glibc's x86_64 getauxval(AT_HWCAP) is its own
	 * HWCAP_X86_* bits, not the kernel's CPUID word. */
	CHECK("auxv_hwcap", have[AT_HWCAP] && v[AT_HWCAP] != 0, "missing");
	CHECK("auxv_clktck", have[AT_CLKTCK] && v[AT_CLKTCK] == 100, "%lu", v[AT_CLKTCK]);
}

/* ---- /proc/self/io ---- */

static int read_io(unsigned long *vals, int *format) {
	long r = slurp("/proc/self/io", buf, sizeof buf);
	static const char *const keys[] = {"rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes",
					   "cancelled_write_bytes"};
	int n = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	*format = n == 7 && buf[r - 1] == '\n';
	for (int i = 0; i < 7 && i < n; i++) {
		if (strcmp(kvs[i].key, keys[i]) != 0 || kvs[i].val[0] != ' ' || !is_num(kvs[i].val + 1))
			*format = 0;
		vals[i] = strtoul(kvs[i].val + 1, NULL, 10);
	}
	return n;
}

static void io_cases(void) {
	unsigned long a[7] = {0}, b[7] = {0};
	int f1, f2;
	read_io(a, &f1);
	CHECK("io_keys_format", f1, "not the 7 \"key: number\" lines in Linux's order");
	int p[2];
	static char data[5000];
	memset(data, 'd', sizeof data);
	long w = -1, r = -1;
	if (pipe(p) == 0) {
		w = write(p[1], data, sizeof data);
		r = read(p[0], data, sizeof data);
		close(p[0]);
		close(p[1]);
	}
	read_io(b, &f2);
	CHECK("io_counts_grow", w == 5000 && r == 5000 && f2 && b[0] >= a[0] + 5000 && b[1] >= a[1] + 5000 &&
					b[2] >= a[2] + 1 && b[3] >= a[3] + 1,
	      "write %ld read %ld, rchar %s wchar %s syscr %s syscw %s", w, r, b[0] >= a[0] + 5000 ? "ok" : "short",
	      b[1] >= a[1] + 5000 ? "ok" : "short", b[2] > a[2] ? "ok" : "short", b[3] > a[3] ? "ok" : "short");
}

/* ---- /proc/meminfo ---- */

static void meminfo_cases(void) {
	static const char *const first[] = {
		"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
		"Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked",
		"SwapTotal", "SwapFree",
	};
	long r = slurp("/proc/meminfo", buf, sizeof buf);
	int n = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	char why[200];
	int ok = n >= 16;
	for (int i = 0; ok && i < 16; i++)
		if (strcmp(kvs[i].key, first[i]) != 0) {
			snprintf(why, sizeof why, "key %d is %.47s, want %s", i, kvs[i].key, first[i]);
			ok = 0;
		}
	if (n < 16)
		snprintf(why, sizeof why, "%d lines", n);
	CHECK("meminfo_first_keys", ok, "%s", why);
	int fmt = n > 0 && buf[r - 1] == '\n';
	for (int i = 0; i < n; i++) {
		const char *k = kvs[i].key, *v = kvs[i].val;
		for (; *k; k++)
			if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' ||
			      *k == '(' || *k == ')'))
				fmt = 0;
		size_t sp = 0;
		while (v[sp] == ' ')
			sp++;
		char num[64];
		snprintf(num, sizeof num, "%s", v + sp);
		size_t nl = strlen(num);
		if (nl > 3 && strcmp(num + nl - 3, " kB") == 0)
			num[nl - 3] = 0;
		if (sp == 0 || !is_num(num))
			fmt = 0;
	}
	CHECK("meminfo_line_format", fmt, "a line is not \"Key: number[ kB]\"");
	/* The kB lines as Linux prints them: "Key:" padded to 16, %8lu. */
	int kb = 1;
	for (int i = 0; i < n; i++) {
		size_t vl = strlen(kvs[i].val);
		if (vl < 3 || strcmp(kvs[i].val + vl - 3, " kB") != 0)
			continue;
		int pad = 16 - (int)strlen(kvs[i].key) - 1;
		long v = strtol(kvs[i].val, NULL, 10);
		char want[80];
		snprintf(want, sizeof want, "%*s%8ld kB", pad > 0 ? pad : 0, "", v);
		if (strcmp(want, kvs[i].val) != 0)
			kb = 0;
	}
	CHECK("meminfo_kb_columns", kb, "a kB line is not padded to column 16 + %%8lu");
	long total = strtol(kv_get(kvs, n, "MemTotal") ?: "0", NULL, 10);
	long avail = strtol(kv_get(kvs, n, "MemAvailable") ?: "0", NULL, 10);
	long fr = strtol(kv_get(kvs, n, "MemFree") ?: "0", NULL, 10);
	CHECK("meminfo_total_ge_available", total > 0 && total >= avail && total >= fr && avail > 0, "not ordered");
	const char *ht = kv_get(kvs, n, "HugePages_Total"), *hs = kv_get(kvs, n, "Hugepagesize");
	CHECK("meminfo_hugepages_total_no_kb", ht && !strstr(ht, "kB") && is_num(ht + strspn(ht, " ")), "\"%s\"",
	      ht ? ht : "missing");
	CHECK("meminfo_hugepagesize_kb", hs && kb_value(hs, 0) > 0,
	      "\"%s\"", hs ? hs : "missing");
}

/* ---- /proc/self/mountinfo ---- */

static int mount_ids[1024], nmounts;

static void mountinfo_cases(void) {
	long r = slurp("/proc/self/mountinfo", buf, sizeof buf);
	int fields = r > 0 && buf[r - 1] == '\n', root = 0, unique = 1, parents = 1;
	int parent_ids[1024], mount_is_root[1024];
	nmounts = 0;
	char *save = NULL;
	char *l = r > 0 ? strtok_r(buf, "\n", &save) : NULL;
	for (; l && nmounts < 1024; l = strtok_r(NULL, "\n", &save)) {
		char *tok[64];
		int nt = 0;
		char *s2 = NULL;
		for (char *t = strtok_r(l, " ", &s2); t && nt < 64; t = strtok_r(NULL, " ", &s2))
			tok[nt++] = t;
		unsigned maj, min;
		char c;
		int dash = -1;
		for (int i = 6; i < nt; i++)
			if (strcmp(tok[i], "-") == 0) {
				dash = i;
				break;
			}
		if (nt < 10 || !is_num(tok[0]) || !is_num(tok[1]) || sscanf(tok[2], "%u:%u%c", &maj, &min, &c) != 2 ||
		    tok[3][0] != '/' || tok[4][0] != '/' || dash < 0 || nt != dash + 4) {
			fields = 0;
			continue;
		}
		for (int i = 6; i < dash; i++)
			if (!strchr(tok[i], ':') && strcmp(tok[i], "unbindable") != 0)
				fields = 0;
		mount_is_root[nmounts] = strcmp(tok[4], "/") == 0;
		if (mount_is_root[nmounts])
			root = 1;
		int id = atoi(tok[0]);
		for (int i = 0; i < nmounts; i++)
			if (mount_ids[i] == id)
				unique = 0;
		parent_ids[nmounts] = atoi(tok[1]);
		mount_ids[nmounts++] = id;
	}
	for (int i = 0; i < nmounts; i++) {
		int found = mount_is_root[i];
		for (int j = 0; j < nmounts; j++)
			if (mount_ids[j] == parent_ids[i])
				found = 1;
		if (!found)
			parents = 0;
	}
	CHECK("mountinfo_fields", fields && nmounts > 0, "a line does not have Linux's fields");
	CHECK("mountinfo_root", root, "no mount at /");
	CHECK("mountinfo_ids_unique", unique, "a mount id repeats");
	CHECK("mountinfo_parents", parents, "a parent id (but the root's) is not a mount id");
}

/* ---- /proc/self/limits ---- */

static void limits_cases(void) {
	static const struct {
		const char *name, *unit;
	} ln[16] = {
		{"Max cpu time", "seconds"},    {"Max file size", "bytes"},      {"Max data size", "bytes"},
		{"Max stack size", "bytes"},    {"Max core file size", "bytes"}, {"Max resident set", "bytes"},
		{"Max processes", "processes"}, {"Max open files", "files"},     {"Max locked memory", "bytes"},
		{"Max address space", "bytes"}, {"Max file locks", "locks"},     {"Max pending signals", "signals"},
		{"Max msgqueue size", "bytes"}, {"Max nice priority", NULL},     {"Max realtime priority", NULL},
		{"Max realtime timeout", "us"},
	};
	long r = slurp("/proc/self/limits", buf, sizeof buf);
	char want[4096];
	size_t w = (size_t)snprintf(want, sizeof want, "%-25s %-20s %-20s %-10s\n", "Limit", "Soft Limit",
				    "Hard Limit", "Units");
	size_t header = w;
	CHECK("limits_header", r > 0 && strncmp(buf, want, header) == 0, "\"%.*s\"", (int)header,
	      r > 0 ? buf : "");
	for (int i = 0; i < 16; i++) {
		struct rlimit rl;
		getrlimit(i, &rl);
		char s[32], h[32];
		if (rl.rlim_cur == RLIM_INFINITY)
			snprintf(s, sizeof s, "unlimited");
		else
			snprintf(s, sizeof s, "%lu", (unsigned long)rl.rlim_cur);
		if (rl.rlim_max == RLIM_INFINITY)
			snprintf(h, sizeof h, "unlimited");
		else
			snprintf(h, sizeof h, "%lu", (unsigned long)rl.rlim_max);
		w += (size_t)snprintf(want + w, sizeof want - w, "%-25s %-20s %-20s ", ln[i].name, s, h);
		if (ln[i].unit)
			w += (size_t)snprintf(want + w, sizeof want - w, "%-10s\n", ln[i].unit);
		else
			w += (size_t)snprintf(want + w, sizeof want - w, "\n");
	}
	const char *diff = buf;
	for (size_t i = 0; r > 0 && i < w && buf[i] == want[i]; i++)
		diff = buf + i + 1;
	CHECK("limits_rows", r == (long)w && strcmp(buf, want) == 0, "differs at byte %ld: \"%.40s\"",
	      (long)(diff - buf), diff);
	const char *nf = strstr(buf, "Max open files");
	unsigned long soft = 0;
	CHECK("limits_nofile_soft", nf && sscanf(nf + 25, "%lu", &soft) == 1 && soft == nofile_soft, "soft %lu",
	      soft);
}

/* ---- cmdline, environ, comm ---- */

static void cmdline_cases(void) {
	long r = slurp("/proc/self/cmdline", buf, sizeof buf);
	size_t w = 0;
	for (int i = 0; i < g_argc; i++) {
		size_t l = strlen(g_argv[i]) + 1;
		memcpy(buf2 + w, g_argv[i], l);
		w += l;
	}
	CHECK("cmdline_nul_terminated", r > 0 && buf[r - 1] == 0, "no final NUL");
	CHECK("cmdline_argv", r == (long)w && memcmp(buf, buf2, w) == 0, "not argv");
	r = slurp("/proc/self/environ", buf, sizeof buf);
	w = 0;
	for (char **e = g_envp; *e; e++) {
		size_t l = strlen(*e) + 1;
		memcpy(buf2 + w, *e, l);
		w += l;
	}
	CHECK("environ_nul_terminated", w == 0 || (r > 0 && buf[r - 1] == 0), "no final NUL");
	CHECK("environ_envp", r == (long)w && memcmp(buf, buf2, w) == 0, "not the initial environment");
	r = slurp("/proc/self/comm", buf, sizeof buf);
	CHECK("comm", r > 0 && strcmp(buf, COMM "\n") == 0, "\"%s\"", r > 0 ? buf : "");
}

/* ---- /proc/self/fdinfo ---- */

static void fdinfo_cases(void) {
	snprintf(fd_path, sizeof fd_path, "/tmp/procfmt-fd.%d", (int)getpid());
	int fd = open(fd_path, O_RDWR | O_APPEND | O_CREAT | O_TRUNC, 0644);
	int fd2 = open(fd_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fd2 < 0 || write(fd, "0123456789", 10) != 10) {
		FAIL("fdinfo_open", "errno %d", errno);
		return;
	}
	struct stat st;
	fstat(fd, &st);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	long r = slurp(path, buf, sizeof buf);
	int n = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	static const char *const keys[] = {"pos", "flags", "mnt_id", "ino"};
	char why[200];
	CHECK("fdinfo_keys", keys_exactly(n, keys, 4, why, sizeof why) && buf[r - 1] == '\n', "%s", why);
	CHECK("fdinfo_pos", strcmp(kv_get(kvs, n, "pos") ?: "", "\t10") == 0, "\"%s\"", kv_get(kvs, n, "pos") ?: "");
	CHECK("fdinfo_flags", strcmp(kv_get(kvs, n, "flags") ?: "", "\t0102002") == 0, "\"%s\"",
	      kv_get(kvs, n, "flags") ?: "");
	char want[64];
	snprintf(want, sizeof want, "\t%lu", (unsigned long)st.st_ino);
	CHECK("fdinfo_ino", strcmp(kv_get(kvs, n, "ino") ?: "", want) == 0, "not st_ino");
	const char *mid = kv_get(kvs, n, "mnt_id") ?: "";
	int id = mid[0] == '\t' && is_num(mid + 1) ? atoi(mid + 1) : -1, found = 0;
	for (int i = 0; i < nmounts; i++)
		if (mount_ids[i] == id)
			found = 1;
	CHECK("fdinfo_mnt_id", found, "mnt_id not a mount id of mountinfo");
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd2);
	r = slurp(path, buf, sizeof buf);
	n = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	CHECK("fdinfo_cloexec_rdonly", strcmp(kv_get(kvs, n, "flags") ?: "", "\t02100000") == 0 &&
					       strcmp(kv_get(kvs, n, "pos") ?: "", "\t0") == 0,
	      "flags \"%s\"", kv_get(kvs, n, "flags") ?: "");
	close(fd);
	close(fd2);
}

/* ---- in a child ---- */

static int child_exit_signal(void) {
	struct statf s;
	if (slurp("/proc/self/stat", buf, sizeof buf) <= 0 || parse_stat(buf, &s) < 0 || s.n != 52)
		return 1;
	if (fl(&s, 38) != SIGCHLD || fl(&s, 4) != getppid() || fl(&s, 20) != 1)
		return 2;
	return 0;
}

static int child_nonewprivs(void) {
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return 1;
	long r = slurp("/proc/self/status", buf, sizeof buf);
	int n = r > 0 ? parse_kv(buf, NULL, kvs, 160) : 0;
	return strcmp(kv_get(kvs, n, "NoNewPrivs") ?: "", "\t1") == 0 ? 0 : 2;
}

static void in_child(const char *name, int (*fn)(void)) {
	pid_t p = fork();
	if (p == 0)
		_exit(fn());
	int st = -1;
	waitpid(p, &st, 0);
	CHECK(name, WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

int main(int argc, char **argv, char **envp) {
	g_argc = argc;
	g_argv = argv;
	g_envp = envp;
	if (setup() < 0) {
		FAIL("setup", "errno %d", errno);
		return 1;
	}
	stat_cases();
	task_cases();
	status_cases();
	statm_cases();
	maps_cases();
	smaps_cases();
	auxv_cases();
	io_cases();
	meminfo_cases();
	mountinfo_cases();
	limits_cases();
	cmdline_cases();
	fdinfo_cases();
	in_child("stat_child_exit_signal", child_exit_signal);
	in_child("status_nonewprivs_child", child_nonewprivs);
	teardown();
	return 0;
}
