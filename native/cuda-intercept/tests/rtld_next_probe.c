/* See rtld_next_lib.c. Exit 0 when RTLD_NEXT resolved relative to the caller. */
#include <stdio.h>

int omai_probe_next(void);

int main(void) {
    int v = omai_probe_next();
    if (v != 2) {
        fprintf(stderr, "shim-rtld-next: FAILED: dlsym(RTLD_NEXT) from the first library returned %s "
                        "(expected the second library's symbol, value 2)\n",
                v == 1 ? "the caller's own symbol (value 1)" : "nothing");
        return 1;
    }
    return 0;
}
