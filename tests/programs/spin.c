/* Says it is ready, then sleeps until a signal ends it. */
#include <stdio.h>
#include <time.h>

int main(void) {
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct timespec t = {1, 0};
		nanosleep(&t, NULL);
	}
}
