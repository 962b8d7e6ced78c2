# int8 kernels, included by firmware/Makefile (variables only; rules are in the Makefile).
#
# Default: our kernels, kernels/tr_*.c (DSP path on cores with __ARM_FEATURE_DSP, plain C
# elsewhere). `make CMSIS_NN_ROOT=/path/to/CMSIS-NN` builds board images against a copy of
# Arm's CMSIS-NN the user supplies (v5.0.0 .. the v7 line): kernels/cmsis_nn_adapter.c maps
# our tr_* interface onto arm_*. No CMSIS-Core header is needed. Native builds keep our
# kernels (the ctypes tests compare them with the golden model). See kernels/README.md.

TR_KERNEL_SRCS := $(sort $(filter-out kernels/cmsis_nn_adapter.c,$(wildcard kernels/tr_*.c)))
# Files the adapter does not replace (CMSIS-NN has no counterpart).
TR_KERNEL_KEEP := kernels/tr_requantize.c kernels/tr_dequantize_s8_f32.c

ifeq ($(strip $(CMSIS_NN_ROOT)),)
KERNEL_SRCS      := $(TR_KERNEL_SRCS)
KERNEL_CFLAGS    := -Ikernels
CMSIS_NN_SRCS    :=
else
override CMSIS_NN_ROOT := $(abspath $(CMSIS_NN_ROOT))
ifeq ($(wildcard $(CMSIS_NN_ROOT)/Include/arm_nnfunctions.h),)
$(error CMSIS_NN_ROOT=$(CMSIS_NN_ROOT): no Include/arm_nnfunctions.h there)
endif
# The API revision of arm_nnfunctions.h ("$Revision: V.18.0.0" -> 18; CMSIS-NN has no
# version macro): v5.0.0 is V.12, v6.0.0 V.16, v7.0.0 V.18 (arm_convolve_s8 gained
# upscale_dims). The adapter checks the signatures it was built for against the header.
CMSIS_NN_API     := $(shell sed -n 's/.*\$$Revision: *V\.\([0-9][0-9]*\)\..*/\1/p' \
                      "$(CMSIS_NN_ROOT)/Include/arm_nnfunctions.h" | head -n 1)
ifeq ($(CMSIS_NN_API),)
$(error CMSIS_NN_ROOT=$(CMSIS_NN_ROOT): no "$$Revision: V.<n>" line in Include/arm_nnfunctions.h)
endif
KERNEL_SRCS      := kernels/cmsis_nn_adapter.c $(TR_KERNEL_KEEP)
# ARM_NN_ENABLE_F32/F16=0: CMSIS-NN's CMake defaults (float extensions off), PUBLIC there.
KERNEL_CFLAGS    := -Ikernels -I$(CMSIS_NN_ROOT)/Include -DTR_NN_CMSIS_NN=1 \
                    -DTR_CMSIS_NN_API=$(CMSIS_NN_API) -DARM_NN_ENABLE_F32=0 -DARM_NN_ENABLE_F16=0
# The sources CMSIS-NN's own CMake builds with its default options: in each Source/<group>
# the files of an integer type (*_s4*, *_s8*, *_s16*, *_s32*, *_s64*) plus four named
# helpers; never the float (_f16/_f32, enabled by ARM_NN_ENABLE_F16/F32) or u8 files.
# Checked file for file against CMake's list for v5.0.0, v6.0.0, v7.0.0 and 99f736a.
# --gc-sections keeps what the adapter calls.
CMSIS_NN_SRCS    := $(sort $(shell find "$(CMSIS_NN_ROOT)/Source" -name '*.c' \( -name '*_s4*' \
                      -o -name '*_s8*' -o -name '*_s16*' -o -name '*_s32*' -o -name '*_s64*' \
                      -o -name arm_relu_q7.c -o -name arm_relu_q15.c -o -name arm_nntables.c \
                      -o -name arm_q7_to_q15_with_offset.c \)))
endif
