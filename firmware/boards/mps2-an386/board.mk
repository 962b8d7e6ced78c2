# mps2-an386: Arm MPS2 FPGA image AN386 (Cortex-M4F), emulated by QEMU 7.2.
QEMU_MACHINE := mps2-an386
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
BOARD_SRCS := boards/mps2-an386/uart.c boards/mps2-an386/board.c $(COMMON_SRCS)
LDSCRIPT := boards/mps2-an386/linker.ld
