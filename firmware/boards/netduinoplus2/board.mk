# netduinoplus2: Netduino Plus 2 (STM32F405RG, Cortex-M4F), emulated by QEMU 7.2.
QEMU_MACHINE := netduinoplus2
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
BOARD_SRCS := boards/netduinoplus2/board.c boards/common/stm32_usart.c $(COMMON_SRCS)
LDSCRIPT := boards/netduinoplus2/linker.ld
