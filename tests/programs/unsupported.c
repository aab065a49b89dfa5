/* Makes a system call the sentry does not implement (add_key: kernel
 * keyrings are not offered) and prints the result. */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
	long r = syscall(SYS_add_key, "user", "rvisor-test", "x", 1, -2);
	printf("add_key: %ld %s\n", r, r < 0 ? (errno == ENOSYS ? "ENOSYS" : "other") : "ok");
	return 0;
}
