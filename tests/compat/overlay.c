/* Overlay semantics on the fixture's rw/ (argv[1] is the fixture): its
 * files come from the lower layer; every change copies up and stays in
 * the upper one. Natively Linux's overlayfs, under rvisor the memory
 * overlay. Copy-up keeps the inode number, owner, mode and data; removed
 * names are whited out (readdir, stat, re-creation); a removed and
 * re-made directory is empty; renames of files across layers, over lower
 * files, of lower directories; hard links; truncation; xattrs; shared
 * mappings of a copied-up file. */
#include "compat.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>

static char base[512];

static const char *at(const char *rel) {
	static char buf[4][600];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/rw/%s", base, rel);
	return buf[i];
}

/* Entries of a directory, sorted, joined with spaces (without . and ..). */
static void listing(const char *dir, char *out, size_t n) {
	char names[64][64];
	int k = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) && k < 64)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(names[k++], 64, "%s", e->d_name);
	if (d)
		closedir(d);
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k; b++)
			if (strcmp(names[a], names[b]) > 0) {
				char t[64];
				memcpy(t, names[a], 64), memcpy(names[a], names[b], 64), memcpy(names[b], t, 64);
			}
	out[0] = 0;
	for (int a = 0; a < k; a++) {
		strncat(out, names[a], n - strlen(out) - 1);
		if (a + 1 < k)
			strncat(out, " ", n - strlen(out) - 1);
	}
}

static long slurp(const char *p, char *buf, size_t n) {
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -errno;
	long r = read(fd, buf, n - 1);
	buf[r > 0 ? r : 0] = 0;
	close(fd);
	return r;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	snprintf(base, sizeof base, "%s", argv[1]);
	struct stat a, b;
	char buf[256], list[1024];

	/* Copy-up on write keeps the identity and the attributes. */
	stat(at("mine/minefile"), &a);
	int fd = open(at("mine/minefile"), O_WRONLY | O_APPEND);
	CHECK("open_for_write_copies_up", fd >= 0, "errno %d", errno);
	write(fd, "more\n", 5);
	close(fd);
	stat(at("mine/minefile"), &b);
	CHECK("copy_up_keeps_ino", a.st_ino == b.st_ino, "%lu %lu", (unsigned long)a.st_ino, (unsigned long)b.st_ino);
	CHECK("copy_up_keeps_owner_mode", b.st_uid == a.st_uid && b.st_gid == a.st_gid && b.st_mode == a.st_mode,
	      "%o %d", b.st_mode, b.st_uid);
	slurp(at("mine/minefile"), buf, sizeof buf);
	CHECK("copy_up_keeps_data", strcmp(buf, "m\nmore\n") == 0, "%s", buf);
	CHECK("copy_up_size", b.st_size == 7, "%ld", (long)b.st_size);

	/* Whiteouts. */
	EXPECT("unlink_lower", unlink(at("pubfile")), 0);
	EXPECT("stat_whiteout_enoent", stat(at("pubfile"), &a) == -1 ? -errno : 0, -ENOENT);
	listing(at(""), list, sizeof list);
	CHECK("readdir_hides_whiteout", !strstr(list, "pubfile"), "%s", list);
	fd = open(at("pubfile"), O_CREAT | O_EXCL | O_WRONLY, 0600);
	CHECK("recreate_over_whiteout", fd >= 0, "errno %d", errno);
	write(fd, "new\n", 4);
	close(fd);
	slurp(at("pubfile"), buf, sizeof buf);
	CHECK("recreated_data", strcmp(buf, "new\n") == 0, "%s", buf);
	stat(at("pubfile"), &a);
	EXPECT("recreated_mode", a.st_mode & 07777, 0600);
	listing(at(""), list, sizeof list);
	printf("listing %s\n", list);

	/* Directories of the lower layer. */
	EXPECT("rmdir_lower_nonempty", rmdir(at("nowrite")) == -1 ? -errno : 0, -ENOTEMPTY);
	EXPECT("unlink_lower_child", unlink(at("nowrite/f")), 0);
	listing(at("nowrite"), list, sizeof list);
	CHECK("merged_dir_empty_after_unlink", list[0] == 0, "%s", list);
	EXPECT("rmdir_lower_now_empty", rmdir(at("nowrite")), 0);
	EXPECT("mkdir_over_removed_dir", mkdir(at("nowrite"), 0700), 0);
	listing(at("nowrite"), list, sizeof list);
	CHECK("remade_dir_is_empty", list[0] == 0, "%s", list);
	EXPECT("remade_dir_has_no_lower_file", stat(at("nowrite/f"), &a) == -1 ? -errno : 0, -ENOENT);

	/* Renames. */
	EXPECT("rename_lower_file", rename(at("rootfile"), at("renamed")), 0);
	EXPECT("renamed_source_gone", stat(at("rootfile"), &a) == -1 ? -errno : 0, -ENOENT);
	slurp(at("renamed"), buf, sizeof buf);
	CHECK("renamed_data", strcmp(buf, "secret\n") == 0, "%s", buf);
	EXPECT("rename_over_lower_file", rename(at("renamed"), at("sticky/rootowned")), 0);
	slurp(at("sticky/rootowned"), buf, sizeof buf);
	CHECK("replaced_data", strcmp(buf, "secret\n") == 0, "%s", buf);
	listing(at("sticky"), list, sizeof list);
	CHECK("replaced_listed_once", strcmp(list, "rootowned") == 0, "%s", list);
	long r = rename(at("rootdir"), at("rootdir2")) == -1 ? -errno : 0;
	printf("rename_lower_dir %s\n", r == 0 ? "ok" : r == -EXDEV ? "EXDEV" : "other");
	EXPECT("mkdir_new", mkdir(at("newdir"), 0755), 0);
	EXPECT("rename_new_dir", rename(at("newdir"), at("newdir2")), 0);

	/* Hard links, truncation, xattrs, mappings. */
	EXPECT("link_lower_file", link(at("noexec/f"), at("hardlink")), 0);
	stat(at("noexec/f"), &a);
	stat(at("hardlink"), &b);
	CHECK("link_same_inode", a.st_ino == b.st_ino && b.st_nlink == 2, "%lu %lu nlink %lu", (unsigned long)a.st_ino,
	      (unsigned long)b.st_ino, (unsigned long)b.st_nlink);
	EXPECT("truncate_lower", truncate(at("sticky/rootowned"), 2), 0);
	slurp(at("sticky/rootowned"), buf, sizeof buf);
	CHECK("truncated", strcmp(buf, "se") == 0, "%s", buf);
	EXPECT("setxattr_lower", setxattr(at("mine"), "user.k", "v", 1, 0), 0);
	memset(buf, 0, sizeof buf);
	EXPECT("getxattr_after_copy_up", getxattr(at("mine"), "user.k", buf, sizeof buf), 1);
	listing(at("mine"), list, sizeof list);
	CHECK("copied_up_dir_keeps_entries", strcmp(list, "minefile") == 0, "%s", list);
	fd = open(at("sgid"), O_RDONLY);
	close(fd);
	fd = open(at("mine/minefile"), O_RDWR);
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK("mmap_shared", m != MAP_FAILED, "errno %d", errno);
	if (m != MAP_FAILED) {
		m[0] = 'M';
		munmap(m, 4096);
	}
	close(fd);
	slurp(at("mine/minefile"), buf, sizeof buf);
	CHECK("mmap_write_seen", buf[0] == 'M', "%s", buf);
	/* Removed lower files do not come back through what still refers to
	 * them. */
	fd = open(at("rw-open-then-unlink"), O_CREAT | O_WRONLY, 0644);
	close(fd);
	fd = open(at("sgid"), O_RDONLY | O_DIRECTORY);
	EXPECT("rmdir_lower_dir_held_open", rmdir(at("sgid")), 0);
	EXPECT("create_in_removed_dir_enoent", openat(fd, "x", O_CREAT | O_WRONLY, 0644) == -1 ? -errno : 0, -ENOENT);
	close(fd);
	EXPECT("removed_dir_stays_gone", stat(at("sgid"), &a) == -1 ? -errno : 0, -ENOENT);
	listing(at(""), list, sizeof list);
	printf("final %s\n", list);
	return 0;
}
