/* Placeholder entry for the shim: loads cleanly and reports the ABI it speaks.
 * Hooks arrive with the memory-quota work. */
#include "omai_shm.h"

__attribute__((visibility("default"))) unsigned omai_shim_abi_version(void);

unsigned omai_shim_abi_version(void) { return OMAI_ABI_VERSION; }
