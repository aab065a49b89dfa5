/* Prints "ready", then waits for a byte (or end of file) on stdin: keeps a
 * sandbox alive while a test inspects it. */
#include <unistd.h>

int main(void) {
	char c;
	write(1, "ready\n", 6);
	return read(0, &c, 1) < 0;
}
