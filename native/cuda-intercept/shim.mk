# The LD_PRELOAD shim and its own native tests and tools.
#   $(BUILD)/lib/libomai-shim.so   the shim (only the hooked symbols exported)
#   $(BUILD)/bin/omai-shm-tool     create/inspect/set allocation files without Java
#   $(BUILD)/bin/omai-shim-dlsym-probe  dlopen+dlsym route: which library each pointer is in
# Everything symbol-shaped comes from cuda-intercept/hooks.def (see there).

SHIM_DIR  := $(NATIVE_DIR)/cuda-intercept
SHIM_LIB  := $(BUILD)/lib/libomai-shim.so
SHIM_LDS  := $(BUILD)/obj/shim.lds
SHIM_SRCS := $(wildcard $(SHIM_DIR)/src/*.c)
SHIM_UNITY := $(SHIM_DIR)/src/shim_unity.c
SHIM_HDRS := $(wildcard $(SHIM_DIR)/src/*.h) $(wildcard $(INCLUDE)/*.h) $(SHIM_DIR)/hooks.def
SHIM_CFLAGS := $(CFLAGS_COMMON) -I$(SHIM_DIR) -fvisibility=hidden -ftls-model=initial-exec

SHM_TOOL    := $(BUILD)/bin/omai-shm-tool
SHIM_DLSYM  := $(BUILD)/bin/omai-shim-dlsym-probe
RTLD_PROBE  := $(BUILD)/bin/omai-rtld-next-probe

ALL_TARGETS += $(SHIM_LIB) $(SHM_TOOL) $(SHIM_DLSYM)
CHECKS      += shim-exports shim-rtld-next
# The version script is generated from the hook list, never edited by hand.
$(SHIM_LDS): $(SHIM_DIR)/shim.lds.in $(SHIM_DIR)/hooks.def | $(BUILD)/obj
	$(CC) -E -P -x c -I$(SHIM_DIR) $< -o $@

$(SHIM_LIB): $(SHIM_SRCS) $(SHIM_HDRS) $(SHIM_LDS) | $(BUILD)/lib
	$(CC) $(SHIM_CFLAGS) -shared -o $@ $(SHIM_UNITY) \
	    -Wl,--version-script=$(SHIM_LDS) -Wl,-z,defs -Wl,-z,now -ldl -lpthread

$(SHM_TOOL): $(SHIM_DIR)/tools/omai_shm_tool.c $(INCLUDE)/omai_shm.h $(INCLUDE)/omai_paths.h | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) -o $@ $<

# Not linked against libcuda: it dlopens the driver, as frameworks do.
$(SHIM_DLSYM): $(SHIM_DIR)/tests/shim_dlsym_probe.c $(INCLUDE)/omai_cuda.h | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) -o $@ $< -ldl

$(RTLD_PROBE): $(SHIM_DIR)/tests/rtld_next_probe.c $(SHIM_DIR)/tests/rtld_next_lib.c | $(BUILD)/bin $(BUILD)/obj
	$(CC) $(CFLAGS_COMMON) -shared -o $(BUILD)/obj/librtld-next-a.so $(SHIM_DIR)/tests/rtld_next_lib.c -DPROBE_VALUE=1 -ldl
	$(CC) $(CFLAGS_COMMON) -shared -o $(BUILD)/obj/librtld-next-b.so $(SHIM_DIR)/tests/rtld_next_lib.c -DPROBE_VALUE=2 -ldl
	$(CC) $(CFLAGS_COMMON) -o $@ $(SHIM_DIR)/tests/rtld_next_probe.c \
	    -L$(BUILD)/obj -Wl,--no-as-needed -lrtld-next-a -lrtld-next-b -Wl,-rpath,$(BUILD)/obj -ldl

.PHONY: shim-exports shim-rtld-next
# Exactly the listed symbols leave the library: the hook list, nothing else.
shim-exports: $(SHIM_LIB) $(SHIM_LDS)
	@nm -D --defined-only $(SHIM_LIB) | awk '$$2 ~ /^[TW]$$/ {print $$3}' | sed 's/@.*//' | sort > $(BUILD)/obj/shim-exports.txt
	@grep -o '^[A-Za-z_0-9]*;' $(SHIM_LDS) | tr -d ';' | sort > $(BUILD)/obj/shim-listed.txt
	@if diff -u $(BUILD)/obj/shim-listed.txt $(BUILD)/obj/shim-exports.txt; then \
	    echo "shim-exports: $$(wc -l < $(BUILD)/obj/shim-exports.txt) symbols, exactly the hook list"; \
	else echo "shim-exports: FAILED: exported symbols differ from hooks.def (diff above)" >&2; exit 1; fi

# Our dlsym must keep RTLD_NEXT relative to its caller (it tail-calls the real one).
shim-rtld-next: $(SHIM_LIB) $(RTLD_PROBE)
	@LD_PRELOAD=$(SHIM_LIB) $(RTLD_PROBE) && echo "shim-rtld-next: RTLD_NEXT through the shim's dlsym resolves after the caller"
# The checks that run the shim over a CUDA driver (shim-no-syscalls, shim-launch) and the programs
# linked against one (omai-shim-race, omai-shim-bench) are in simulator/native/Makefile, which has the
# simulated driver; their sources stay here in tests/.
