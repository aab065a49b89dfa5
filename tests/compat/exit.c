/* Exit statuses: argv[1] is the code, argv[2] (optional) the way out. */
#include "compat.h"

int main(int argc, char **argv) {
	int code = argc > 1 ? atoi(argv[1]) : 0;
	const char *how = argc > 2 ? argv[2] : "exit_group";
	printf("ok started\n");
	if (!strcmp(how, "exit"))
		RAW1(SYS_exit, code);
	else if (!strcmp(how, "return"))
		return code;
	RAW1(SYS_exit_group, code);
	FAIL("exit", "returned");
	return 99;
}
