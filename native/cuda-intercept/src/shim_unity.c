/*
 * shim_unity.c - the shim is compiled as this one translation unit, so the
 * compiler can inline the accounting steps (reserve, table insert, commit)
 * into each wrapper: the hot path of an allocation is then one function.
 * The parts stay separate files for reading (see shim.h).
 */
#include "shim_init.c"
#include "shim_lookup.c"
#include "shim_ptrtab.c"
#include "shim_region.c"
#include "shim_mem.c"
#include "shim_launch.c"
#include "shim_nvml.c"
