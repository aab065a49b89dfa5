/* execve of static and dynamic programs and #! scripts, its errors,
 * /proc/self and /dev. argv[1] is the fixture directory, argv[2] the case
 * (cases that succeed end in the executed program). */
#include "compat.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

extern char **environ;

static void script(const char *name, const char *body) {
	long fd = RAW3(SYS_open, name, O_CREAT | O_WRONLY | O_TRUNC, 0755);
	RAW3(SYS_write, fd, body, strlen(body));
	RAW1(SYS_close, fd);
}

/* chain0 .. chain5, each run by the next; chain5 by /bin/echo. */
static void chain(const char *cwd) {
	for (int i = 0; i < 5; i++) {
		char name[16], body[PATH_MAX + 32];
		snprintf(name, sizeof name, "chain%d", i);
		snprintf(body, sizeof body, "#!%s/chain%d\n", cwd, i + 1);
		script(name, body);
	}
	script("chain5", "#!/bin/echo chain\n");
}

static long ex(const char *path, char *const argv[]) {
	return RAW3(SYS_execve, path, argv, environ);
}

static void print_link(const char *what, const char *p) {
	char b[PATH_MAX];
	long n = RAW3(SYS_readlink, p, b, sizeof b - 1);
	if (n < 0) {
		printf("%s: error %ld\n", what, -n);
		return;
	}
	b[n] = 0;
	printf("%s: %s\n", what, b);
}

static void print_file(const char *what, const char *p, int nul_to_space) {
	char b[4096];
	long fd = RAW3(SYS_open, p, O_RDONLY, 0);
	long n = fd < 0 ? fd : RAW3(SYS_read, fd, b, sizeof b - 1);
	RAW1(SYS_close, fd);
	if (n < 0) {
		printf("%s: error %ld\n", what, -n);
		return;
	}
	for (long i = 0; i < n; i++)
		if (nul_to_space && b[i] == 0)
			b[i] = ' ';
	b[n] = 0;
	printf("%s: %s\n", what, b);
}

/* The lines of /proc/self/maps that map the program itself: permissions
 * and offset (addresses are randomised). */
static void print_own_maps(void) {
	char exe[PATH_MAX], b[65536];
	long n = RAW3(SYS_readlink, "/proc/self/exe", exe, sizeof exe - 1);
	if (n < 0)
		return;
	exe[n] = 0;
	long fd = RAW3(SYS_open, "/proc/self/maps", O_RDONLY, 0);
	long got = 0, k;
	while ((k = RAW3(SYS_read, fd, b + got, sizeof b - 1 - got)) > 0)
		got += k;
	RAW1(SYS_close, fd);
	b[got] = 0;
	for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n")) {
		char *name = strchr(line, '/');
		if (!name || strcmp(name, exe) != 0)
			continue;
		char perms[8] = {0}, off[16] = {0};
		sscanf(line, "%*s %7s %15s", perms, off);
		printf("maps: %s %s\n", perms, off);
	}
}

int main(int argc, char **argv) {
	if (argc < 3 || chdir(argv[1]) || chdir("rw")) {
		FAIL("setup", "no fixture directory or case");
		return 1;
	}
	const char *c = argv[2];
	char cwd[PATH_MAX];
	getcwd(cwd, sizeof cwd);
	char path[PATH_MAX + 16];

	if (strcmp(c, "reexec") == 0) {
		char *a[] = {"again", (char *)argv[1], "reexec-done", NULL};
		EXPECT("reexec", ex("/proc/self/exe", a), 0);
		return 1;
	}
	if (strcmp(c, "reexec-done") == 0) {
		OK("reexec");
		print_file("comm", "/proc/self/comm", 0);
		print_file("cmdline", "/proc/self/cmdline", 1);
		return 0;
	}
	if (strcmp(c, "dynamic") == 0) {
		char *a[] = {"echo", "dynamic", "exec", NULL};
		return (int)ex("/bin/echo", a);
	}
	if (strcmp(c, "shebang") == 0) {
		script("s1", "#!/bin/sh\necho script \"$0\" \"$1\"\n");
		snprintf(path, sizeof path, "%s/s1", cwd);
		char *a[] = {"ignored", "arg", NULL};
		return (int)ex(path, a);
	}
	if (strcmp(c, "shebang_arg") == 0) {
		script("s2", "#! /bin/echo  one two  \nnot run\n");
		char *a[] = {"ignored", "extra", NULL};
		return (int)ex("s2", a);
	}
	if (strcmp(c, "shebang_nested") == 0) {
		snprintf(path, sizeof path, "#!%s/s4\n", cwd);
		script("s3", path);
		script("s4", "#!/bin/echo nested\n");
		char *a[] = {"ignored", "extra", NULL};
		return (int)ex("s3", a);
	}
	if (strcmp(c, "chain") == 0) {
		/* Five scripts in a chain run. */
		chain(cwd);
		char *a[] = {"ignored", "extra", NULL};
		return (int)ex("chain1", a);
	}
	if (strcmp(c, "empty_argv") == 0) {
		char *a[] = {NULL};
		return (int)ex("/bin/echo", a);
	}
	if (strcmp(c, "errors") == 0) {
		char *a[] = {"x", NULL};
		script("garbage", "\x01\x02\x03 not a program\n");
		EXPECT("enoexec", ex("garbage", a), -ENOEXEC);
		script("noexec", "#!/bin/sh\n");
		RAW2(SYS_chmod, "noexec", 0644);
		EXPECT("no_execute_bit_eacces", ex("noexec", a), -EACCES);
		EXPECT("directory_eacces", ex(".", a), -EACCES);
		EXPECT("missing_enoent", ex("missing", a), -ENOENT);
		EXPECT("not_a_directory_enotdir", ex("garbage/x", a), -ENOTDIR);
		script("empty_interp", "#!\n");
		EXPECT("empty_interpreter_enoexec", ex("empty_interp", a), -ENOEXEC);
		script("missing_interp", "#!/no/such/interpreter\n");
		EXPECT("missing_interpreter_enoent", ex("missing_interp", a), -ENOENT);
		/* Six scripts in a chain: one too many. */
		chain(cwd);
		EXPECT("script_chain_eloop", ex("chain0", a), -ELOOP);
		/* A program open for writing cannot run, and a running one cannot
		 * be written. */
		long src = RAW3(SYS_open, "/bin/true", O_RDONLY, 0);
		long dst = RAW3(SYS_open, "true-copy", O_CREAT | O_WRONLY, 0755);
		char buf[65536];
		long n;
		while ((n = RAW3(SYS_read, src, buf, sizeof buf)) > 0)
			RAW3(SYS_write, dst, buf, n);
		EXPECT("exec_open_for_writing_etxtbsy", ex("true-copy", a), -ETXTBSY);
		RAW1(SYS_close, dst);
		EXPECT("write_running_program_etxtbsy", RAW3(SYS_open, "/proc/self/exe", O_WRONLY, 0), -ETXTBSY);
		/* truncate asks for write access to the mount first. */
		EXPECT("truncate_running_program_on_ro_root", RAW2(SYS_truncate, "/proc/self/exe", 0), -EROFS);
		EXPECT("bad_argv_efault", ex("/bin/true", BAD_PTR), -EFAULT);
		char *bad[] = {"x", BAD_PTR, NULL};
		EXPECT("bad_string_efault", ex("/bin/true", bad), -EFAULT);
		EXPECT("bad_path_efault", ex(BAD_PTR, a), -EFAULT);
		static char *many[300000];
		static char arg[64];
		memset(arg, 'a', sizeof arg - 1);
		for (int i = 0; i < 299999; i++)
			many[i] = arg;
		EXPECT("too_many_arguments_e2big", ex("/bin/true", many), -E2BIG);
		EXPECT("execveat_bad_flags", RAW5(SYS_execveat, AT_FDCWD, "garbage", a, environ, 1), -EINVAL);
		EXPECT("execveat_empty_path", RAW5(SYS_execveat, AT_FDCWD, "", a, environ, 0), -ENOENT);
		return 0;
	}
	if (strcmp(c, "execveat") == 0) {
		long fd = RAW3(SYS_open, "/bin/echo", O_PATH, 0);
		char *a[] = {"echo", "via", "execveat", NULL};
		return (int)RAW5(SYS_execveat, fd, "", a, environ, AT_EMPTY_PATH);
	}
	if (strcmp(c, "proc") == 0) {
		print_link("exe", "/proc/self/exe");
		print_link("cwd", "/proc/self/cwd");
		print_link("root", "/proc/self/root");
		long fd = RAW3(SYS_open, "pfile", O_CREAT | O_RDWR, 0644);
		snprintf(path, sizeof path, "/proc/self/fd/%ld", fd);
		print_link("fd", path);
		RAW1(SYS_unlink, "pfile");
		print_link("fd_deleted", path);
		struct stat st;
		EXPECT("proc_self_is_link", RAW4(SYS_newfstatat, AT_FDCWD, "/proc/self", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
						    S_ISLNK(st.st_mode),
		       1);
		EXPECT("proc_self_exe_stat", RAW2(SYS_stat, "/proc/self/exe", &st) == 0 && S_ISREG(st.st_mode), 1);
		print_file("comm", "/proc/self/comm", 0);
		print_file("cmdline", "/proc/self/cmdline", 1);
		EXPECT("environ_has_compat_a", RAW3(SYS_open, "/proc/self/environ", O_RDONLY, 0) >= 0, 1);
		print_own_maps();
		EXPECT("prctl_set_name", RAW2(SYS_prctl, 15 /* PR_SET_NAME */, "renamed"), 0);
		print_file("comm_after_prctl", "/proc/self/comm", 0);
		long w = RAW3(SYS_open, "/proc/self/maps", O_WRONLY, 0);
		EXPECT("proc_file_open_for_write_as_root", w >= 0, 1);
		EXPECT("proc_file_write_einval", RAW3(SYS_write, w, "x", 1), -EINVAL);
		EXPECT("proc_missing", RAW2(SYS_stat, "/proc/self/nonexistent", &st), -ENOENT);
		return 0;
	}
	if (strcmp(c, "devices") == 0) {
		char b[16];
		long fd = RAW3(SYS_open, "/dev/null", O_RDWR, 0);
		EXPECT("null_read", RAW3(SYS_read, fd, b, sizeof b), 0);
		EXPECT("null_write", RAW3(SYS_write, fd, "abc", 3), 3);
		EXPECT("null_lseek", RAW3(SYS_lseek, fd, 100, SEEK_SET), 0);
		struct stat st;
		RAW2(SYS_fstat, fd, &st);
		CHECK("null_stat", S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) && (st.st_mode & 0777) == 0666,
		      "mode %o rdev %lx", (unsigned)st.st_mode, (unsigned long)st.st_rdev);
		fd = RAW3(SYS_open, "/dev/zero", O_RDWR, 0);
		memset(b, 1, sizeof b);
		EXPECT("zero_read", RAW3(SYS_read, fd, b, sizeof b), sizeof b);
		CHECK("zero_zeros", b[0] == 0 && b[15] == 0, "got %d", b[0]);
		long zro = RAW3(SYS_open, "/dev/zero", O_RDONLY, 0);
		EXPECT("zero_shared_write_on_rdonly_eacces", raw(SYS_mmap, 0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, zro, 0),
		       -EACCES);
		char *m = (char *)raw(SYS_mmap, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		CHECK("zero_mmap", m != MAP_FAILED && m[100] == 0, "got %p", m);
		m[0] = 7;
		CHECK("zero_mmap_writable", m[0] == 7, "got %d", m[0]);
		fd = RAW3(SYS_open, "/dev/full", O_RDWR, 0);
		EXPECT("full_write_enospc", RAW3(SYS_write, fd, "x", 1), -ENOSPC);
		EXPECT("full_read", RAW3(SYS_read, fd, b, 4), 4);
		fd = RAW3(SYS_open, "/dev/urandom", O_RDONLY, 0);
		EXPECT("urandom_read", RAW3(SYS_read, fd, b, sizeof b), sizeof b);
		fd = RAW3(SYS_open, "/dev/random", O_RDONLY, 0);
		EXPECT("random_read", RAW3(SYS_read, fd, b, 8), 8);
		print_link("dev_fd", "/dev/fd");
		return 0;
	}
	FAIL("case", "unknown case %s", c);
	return 1;
}
