# cuda-header-check: omai_cuda.h must agree with NVIDIA's cuda.h on every enum
# value, struct size and field offset it declares. Runs where cuda.h exists
# (CUDA_HOME, default /usr/local/cuda); elsewhere it says it was skipped.

CUDA_HOME ?= /usr/local/cuda
CUDA_H    := $(CUDA_HOME)/include/cuda.h
CUDA_CHECK_SRC := $(NATIVE_DIR)/tools/cuda_header_check.c
CUDA_CHECK_DIR := $(BUILD)/cuda-check

CHECKS += cuda-header-check
.PHONY: cuda-header-check

cuda-header-check: $(CUDA_CHECK_SRC) $(INCLUDE)/omai_cuda.h
	@if [ ! -f "$(CUDA_H)" ]; then \
	    echo "cuda-header-check: skipped: cuda.h not found at $(CUDA_H)"; \
	else \
	    mkdir -p $(CUDA_CHECK_DIR) && \
	    $(CC) $(CFLAGS_COMMON) -o $(CUDA_CHECK_DIR)/ours $(CUDA_CHECK_SRC) && \
	    $(CC) $(CSTD) -w -I$(CUDA_HOME)/include -DOMAI_CHECK_WITH_CUDA_H \
	        -o $(CUDA_CHECK_DIR)/nvidia $(CUDA_CHECK_SRC) && \
	    $(CUDA_CHECK_DIR)/ours > $(CUDA_CHECK_DIR)/ours.txt && \
	    $(CUDA_CHECK_DIR)/nvidia > $(CUDA_CHECK_DIR)/nvidia.txt && \
	    if diff -U0 --label omai_cuda.h --label $(CUDA_H) \
	        $(CUDA_CHECK_DIR)/ours.txt $(CUDA_CHECK_DIR)/nvidia.txt; then \
	        echo "cuda-header-check: omai_cuda.h agrees with $(CUDA_H) ($$(wc -l < $(CUDA_CHECK_DIR)/ours.txt) items)"; \
	    else \
	        echo "cuda-header-check: FAILED: omai_cuda.h disagrees with $(CUDA_H) on the lines above" >&2; \
	        exit 1; \
	    fi; \
	fi
