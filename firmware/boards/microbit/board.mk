# microbit: BBC micro:bit v1 (nRF51822, Cortex-M0, 16 KB RAM, no FPU), emulated by QEMU 7.2.
QEMU_MACHINE := microbit
CPU_FLAGS := -mcpu=cortex-m0 -mthumb -mfloat-abi=soft
BOARD_SRCS := boards/microbit/board.c boards/common/nrf_uart.c $(COMMON_SRCS)
LDSCRIPT := boards/microbit/linker.ld
# 16 KB RAM: the velocity strategies (neq, velocity-budget) keep per-neuron histories over
# a validation set that do not fit; HELLO does not advertise them here.
BOARD_EXCLUDE := src/strategy_velocity.c src/strategy_neq.c src/strategy_velocity_budget.c
