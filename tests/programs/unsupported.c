/* Makes a system call the sentry does not implement yet (pipe, until the
 * processes issue) and prints the result. */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
	int fds[2];
	long r = syscall(SYS_pipe, fds);
	printf("pipe: %ld %s\n", r, r < 0 ? (errno == ENOSYS ? "ENOSYS" : "other") : "ok");
	return 0;
}
