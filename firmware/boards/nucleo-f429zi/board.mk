# nucleo-f429zi: ST NUCLEO-F429ZI (STM32F429ZI, Cortex-M4F, 2 MB flash, 192+64 KB RAM).
# Real hardware only (no QEMU machine): flashed with pyocd, target stm32f429xi.
QEMU_MACHINE := none
PYOCD_TARGET := stm32f429xi
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
BOARD_SRCS := boards/nucleo-f429zi/board.c boards/common/stm32_usart.c $(COMMON_SRCS)
LDSCRIPT := boards/nucleo-f429zi/linker.ld
