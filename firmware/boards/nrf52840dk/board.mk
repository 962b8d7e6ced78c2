# nrf52840dk: Nordic nRF52840-DK (nRF52840, Cortex-M4F at 64 MHz, 1 MB flash, 256 KB RAM).
# Real hardware only (no QEMU machine): flashed with pyocd, target nrf52840.
QEMU_MACHINE := none
PYOCD_TARGET := nrf52840
CPU_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
BOARD_SRCS := boards/nrf52840dk/board.c boards/common/nrf_uart.c $(COMMON_SRCS)
LDSCRIPT := boards/nrf52840dk/linker.ld
