# Compiler settings shared by every native Makefile (this one's and simulator/native's, which includes it):
# one set of warnings, one output directory. NATIVE_DIR is native/ of the including Makefile's project.
ROOT_DIR   := $(abspath $(NATIVE_DIR)/..)
BUILD      ?= $(NATIVE_DIR)/build
INCLUDE    := $(NATIVE_DIR)/cuda-intercept/include

CC      ?= gcc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
OPT     ?= -O2 -g
CFLAGS_COMMON := $(CSTD) $(WARN) $(OPT) -fPIC -I$(INCLUDE)
