# The LD_PRELOAD shim. Everything is hidden except the hooked symbols (version script).

SHIM_LIB  := $(BUILD)/lib/libomai-shim.so
SHIM_SRCS := $(wildcard $(NATIVE_DIR)/cuda-intercept/src/*.c)
SHIM_HDRS := $(wildcard $(NATIVE_DIR)/cuda-intercept/src/*.h) $(wildcard $(INCLUDE)/*.h)
ALL_TARGETS += $(SHIM_LIB)

$(SHIM_LIB): $(SHIM_SRCS) $(SHIM_HDRS) $(NATIVE_DIR)/cuda-intercept/shim.lds | $(BUILD)/lib
	$(CC) $(CFLAGS_COMMON) -fvisibility=hidden -shared -o $@ $(SHIM_SRCS) \
	    -Wl,--version-script=$(NATIVE_DIR)/cuda-intercept/shim.lds -Wl,-z,defs -ldl -lpthread
