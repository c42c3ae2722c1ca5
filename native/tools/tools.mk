# Small native tools: the ABI layout probe the Java layout test compares against.

ABI_PROBE := $(BUILD)/bin/omai-abi-probe
ALL_TARGETS += $(ABI_PROBE)

$(ABI_PROBE): $(NATIVE_DIR)/tools/abi_probe.c $(INCLUDE)/omai_shm.h | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) -o $@ $<
