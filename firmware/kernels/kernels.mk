# int8 kernels, included by firmware/Makefile (variables only; rules are in the Makefile).
#
# Default: our kernels, kernels/tr_*.c (DSP path on cores with __ARM_FEATURE_DSP, plain C
# elsewhere). `make CMSIS_NN_ROOT=/path/to/CMSIS-NN` builds board images against Arm's
# CMSIS-NN instead: kernels/cmsis_nn_adapter.c maps our tr_* interface onto arm_*; CMSIS-NN
# needs CMSIS-Core's cmsis_compiler.h, found in CMSIS_CORE_INCLUDE (default: a CMSIS_6
# checkout next to CMSIS-NN). Native builds always use our kernels (CMSIS-NN's headers
# target Arm compilers). See kernels/README.md.

TR_KERNEL_SRCS := $(sort $(filter-out kernels/cmsis_nn_adapter.c,$(wildcard kernels/tr_*.c)))
# Files the adapter does not replace (CMSIS-NN has no counterpart).
TR_KERNEL_KEEP := kernels/tr_requantize.c kernels/tr_dequantize_s8_f32.c

ifeq ($(strip $(CMSIS_NN_ROOT)),)
KERNEL_SRCS      := $(TR_KERNEL_SRCS)
KERNEL_CFLAGS    := -Ikernels
CMSIS_NN_SRCS    :=
else
ifeq ($(wildcard $(CMSIS_NN_ROOT)/Include/arm_nnfunctions.h),)
$(error CMSIS_NN_ROOT=$(CMSIS_NN_ROOT): no Include/arm_nnfunctions.h there)
endif
CMSIS_CORE_INCLUDE ?= $(CMSIS_NN_ROOT)/../CMSIS_6/CMSIS/Core/Include
KERNEL_SRCS      := kernels/cmsis_nn_adapter.c $(TR_KERNEL_KEEP)
KERNEL_CFLAGS    := -Ikernels -I$(CMSIS_NN_ROOT)/Include -I$(CMSIS_CORE_INCLUDE) -DTR_NN_CMSIS_NN=1
# All of CMSIS-NN; --gc-sections keeps what the adapter calls.
CMSIS_NN_SRCS    := $(sort $(shell find "$(CMSIS_NN_ROOT)/Source" -name '*.c'))
endif
