# The simulated GPU driver and the programs that drive it (docs/simulator.md).
#   $(BUILD)/sim/libcuda.so.1 (+ libcuda.so)          simulated CUDA driver API
#   $(BUILD)/sim/libnvidia-ml.so.1 (+ libnvidia-ml.so) simulated NVML
#   $(BUILD)/bin/omai-sim-ctl       inspect/reset the shared state, inject XIDs, lose a GPU
#   $(BUILD)/bin/omai-workload      driver-API workload (linked -lcuda, found via LD_LIBRARY_PATH)
#   $(BUILD)/bin/omai-cudart-loader cudart-like loader: dlopen + cuGetProcAddress_v2 only
#   $(BUILD)/bin/omai-nvml-query    NVML client (linked -lnvidia-ml)

HARNESS_DIR := $(ROOT_DIR)/test-harness/native
SIM_INC     := -I$(HARNESS_DIR)/include -I$(HARNESS_DIR)/sim
SIM_CORE    := $(HARNESS_DIR)/sim/sim_core.c
SIM_HDRS    := $(wildcard $(HARNESS_DIR)/include/*.h) $(HARNESS_DIR)/sim/sim_core.h \
               $(INCLUDE)/omai_cuda.h $(INCLUDE)/omai_nvml.h

SIM_CUDA    := $(BUILD)/sim/libcuda.so.1
SIM_NVML    := $(BUILD)/sim/libnvidia-ml.so.1
SIM_CTL     := $(BUILD)/bin/omai-sim-ctl
WORKLOAD    := $(BUILD)/bin/omai-workload
CUDART_LOADER := $(BUILD)/bin/omai-cudart-loader
NVML_QUERY  := $(BUILD)/bin/omai-nvml-query

ALL_TARGETS += $(SIM_CUDA) $(BUILD)/sim/libcuda.so $(SIM_NVML) $(BUILD)/sim/libnvidia-ml.so \
               $(SIM_CTL) $(WORKLOAD) $(CUDART_LOADER) $(NVML_QUERY)
CHECKS      += sim-smoke

# The driver libraries: only the API is exported (sim_core stays hidden).
$(SIM_CUDA): $(HARNESS_DIR)/sim/sim_cuda.c $(SIM_CORE) $(SIM_HDRS) | $(BUILD)/sim
	$(CC) $(CFLAGS_COMMON) $(SIM_INC) -fvisibility=hidden -shared -Wl,-soname,libcuda.so.1 \
	    -Wl,-z,defs -o $@ $(HARNESS_DIR)/sim/sim_cuda.c $(SIM_CORE) -lpthread

$(SIM_NVML): $(HARNESS_DIR)/sim/sim_nvml.c $(SIM_CORE) $(SIM_HDRS) | $(BUILD)/sim
	$(CC) $(CFLAGS_COMMON) $(SIM_INC) -fvisibility=hidden -shared -Wl,-soname,libnvidia-ml.so.1 \
	    -Wl,-z,defs -o $@ $(HARNESS_DIR)/sim/sim_nvml.c $(SIM_CORE) -lpthread

$(BUILD)/sim/libcuda.so: | $(SIM_CUDA)
	ln -sf libcuda.so.1 $@

$(BUILD)/sim/libnvidia-ml.so: | $(SIM_NVML)
	ln -sf libnvidia-ml.so.1 $@

$(SIM_CTL): $(HARNESS_DIR)/tools/omai_sim_ctl.c $(SIM_CORE) $(SIM_HDRS) | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) $(SIM_INC) -o $@ $(HARNESS_DIR)/tools/omai_sim_ctl.c $(SIM_CORE) -lpthread

# Linked like a real CUDA program: -lcuda, resolved at run time through
# LD_LIBRARY_PATH, so an LD_PRELOADed shim interposes exactly as in production.
$(WORKLOAD): $(HARNESS_DIR)/workloads/omai_workload.c $(HARNESS_DIR)/workloads/workload_util.h $(SIM_HDRS) \
             $(BUILD)/sim/libcuda.so | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) $(SIM_INC) -o $@ $(HARNESS_DIR)/workloads/omai_workload.c \
	    -L$(BUILD)/sim -lcuda -ldl

$(CUDART_LOADER): $(HARNESS_DIR)/workloads/omai_cudart_loader.c $(HARNESS_DIR)/workloads/workload_util.h \
                  $(SIM_HDRS) | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) $(SIM_INC) -o $@ $(HARNESS_DIR)/workloads/omai_cudart_loader.c -ldl

$(NVML_QUERY): $(HARNESS_DIR)/workloads/omai_nvml_query.c $(HARNESS_DIR)/workloads/workload_util.h \
               $(SIM_HDRS) $(BUILD)/sim/libnvidia-ml.so | $(BUILD)/bin
	$(CC) $(CFLAGS_COMMON) $(SIM_INC) -o $@ $(HARNESS_DIR)/workloads/omai_nvml_query.c \
	    -L$(BUILD)/sim -lnvidia-ml

.PHONY: sim-smoke
sim-smoke: $(SIM_CUDA) $(SIM_NVML) $(SIM_CTL) $(WORKLOAD) $(CUDART_LOADER) $(NVML_QUERY)
	@$(HARNESS_DIR)/sim-smoke.sh $(BUILD)
