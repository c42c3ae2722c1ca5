/* Two copies of this library (PROBE_VALUE 1 and 2) for the RTLD_NEXT check:
 * the first copy's omai_probe_next() must find the SECOND copy's
 * omai_probe_value(), i.e. "next after the caller", even through the shim's
 * dlsym. Relative to the shim it would find the first copy (1). */
#include <dlfcn.h>

int omai_probe_value(void);
int omai_probe_next(void);

int omai_probe_value(void) { return PROBE_VALUE; }

int omai_probe_next(void) {
    int (*next)(void) = (int (*)(void))dlsym(RTLD_NEXT, "omai_probe_value");
    return next ? next() : -1;
}
