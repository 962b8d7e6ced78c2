"""The board support code's register map against the vendors' SVD files (shipped inside
pyocd, read through pyocd's own SVD parser) and the Armv7-M / Armv6-M architecture
manuals, so a wrong address or bit in C fails here, not on a board.

The C side is read from the sources: every `#define` of the board files is evaluated
(REG32(...) unwrapped, u suffixes dropped). Names follow one rule that the test enforces:
`<PERIPH>_<REG>` is a register address, `<PERIPH>_BASE` a peripheral's base,
`<PERIPH>_<REG>_<FIELD>` a field mask and `<PERIPH>_<REG>_<FIELD>_Pos` its lowest bit;
every such name whose peripheral the SVD has must match it. Values the C code computes
(the PLL, the baud registers) are recomputed from the reference manuals' formulas.
"""

from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

import pytest

from rig.firmware import FIRMWARE_SRC
from rig.twin.svd import Device, Field, Register, load_device

BOARDS = FIRMWARE_SRC / "boards"

# --- reading the C --------------------------------------------------------------------

_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)(\([^)]*\))?\s+(.*?)\s*(?:/\*.*)?$", re.M)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv, ast.LShift: operator.lshift,
        ast.RShift: operator.rshift, ast.BitOr: operator.or_, ast.BitAnd: operator.and_,
        ast.BitXor: operator.xor}


def c_defines(*files: Path) -> dict[str, str]:
    """Object-like macros of the files (later files win), as C expression text."""
    out: dict[str, str] = {}
    for f in files:
        text = re.sub(r"/\*.*?\*/", " ", f.read_text(), flags=re.S)
        for name, params, body in _DEFINE.findall(text):
            if not params and body:
                out[name] = body.strip()
    return out


def c_eval(expr: str, defines: dict[str, str], depth: int = 0) -> int:
    """An integer constant expression of the firmware's macros (unsigned 32-bit)."""
    if depth > 20:
        raise ValueError(f"macro recursion in {expr!r}")
    expr = re.sub(r"REG32\s*\(", "(", expr)
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr)
    expr = re.sub(r"\(\s*u?int32_t\s*\)|\(\s*uintptr_t\s*\)", "", expr)

    def sub(m: re.Match[str]) -> str:
        name = m.group(0)
        if name in defines:
            return f"({c_eval(defines[name], defines, depth + 1)})"
        raise KeyError(f"{name} is not a macro of the board files")

    expr = re.sub(r"\b[A-Za-z_]\w*\b", sub, expr).replace("/", "//")
    return _eval(ast.parse(expr, mode="eval").body) & 0xFFFFFFFF


def _eval(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return int(_OPS[type(node.op)](_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return ~_eval(node.operand) & 0xFFFFFFFF
    raise ValueError(f"not an integer constant expression: {ast.dump(node)}")


def span(reg: Register, name: str) -> Field:
    """A field by name; the ST SVD splits multi-bit fields into numbered bits (PLLM0..5)."""
    parts = [f for f in reg.fields if f.name == name] or sorted(
        (f for f in reg.fields if re.fullmatch(rf"{name}\d+", f.name)), key=lambda f: f.offset)
    if not parts:
        raise KeyError(f"{reg.name} has no field {name}")
    lo = parts[0].offset
    width = parts[-1].offset + parts[-1].width - lo
    assert width == sum(p.width for p in parts), f"{reg.name}.{name} is not contiguous"
    return Field(name, lo, width)


def check_names(defs: dict[str, str], dev: Device, aliases: dict[str, str]) -> list[str]:
    """Every macro named after an SVD peripheral checked against the SVD. Returns what was
    checked (so a test also fails if it checked nothing). `aliases` maps a C prefix to the
    SVD peripheral (the nRF52's GPIO port is P0, the C code says GPIO)."""
    checked = []
    for name, body in sorted(defs.items()):
        head, _, rest = name.partition("_")
        periph = aliases.get(head, head)
        if periph not in dev.peripherals or not rest:
            continue
        p = dev.peripheral(periph)
        value = c_eval(body, defs)
        if rest == "BASE":
            assert value == p.base, f"{name} = {value:#x}, SVD {periph} base {p.base:#x}"
            checked.append(name)
            continue
        reg, field, pos = _split(rest, p.registers)
        if reg is None:
            raise AssertionError(f"{name}: {periph} has no register that starts {rest!r}")
        if field is None:
            assert value in (p.base + reg.offset, reg.offset), (
                f"{name} = {value:#x}, SVD {periph}.{reg.name} at {p.base + reg.offset:#x}")
        else:
            f = span(reg, field)
            want = f.offset if pos else f.mask
            assert value == want, f"{name} = {value:#x}, SVD {periph}.{reg.name}.{field} " \
                                  f"{'offset' if pos else 'mask'} {want:#x}"
        checked.append(name)
    return checked


def _split(rest: str, regs: tuple[Register, ...]) -> tuple[Register | None, str | None, bool]:
    pos = rest.endswith("_Pos")
    if pos:
        rest = rest[:-4]
    norm = {r.name.replace("_", ""): r for r in regs}  # PSEL_TXD (nRF52) == PSELTXD (nRF51)
    for r in sorted(regs, key=lambda r: -len(r.name)):
        for rname in (r.name, r.name.replace("_", "")):
            if rest == rname:
                return r, None, pos
            if rest.startswith(rname + "_"):
                return r, rest[len(rname) + 1:], pos
    return norm.get(rest.replace("_", "")), None, pos


# --- the vendors' and Arm's facts the board code must match ---------------------------

STM32 = "STM32F429x.svd"
NRF52 = "nrf52840.svd"
NRF51 = "nrf51.svd"

#: Armv7-M ARM (DDI 0403E) B3.2.2 / B3.3 / C1.6 / C1.8, Armv6-M ARM (DDI 0419E) B3.2:
#: System Control Space addresses and the fault status bits the firmware reads.
ARM_SCS = {
    "SCB_CPACR": 0xE000ED88, "SCB_VTOR": 0xE000ED08, "SCB_SHCSR": 0xE000ED24,
    "SCB_CFSR": 0xE000ED28, "SCB_HFSR": 0xE000ED2C, "SCB_MMFAR": 0xE000ED34,
    "SCB_BFAR": 0xE000ED38, "SCB_DHCSR": 0xE000EDF0, "SCB_DEMCR": 0xE000EDFC,
    "DWT_CTRL": 0xE0001000, "DWT_CYCCNT": 0xE0001004, "SYST_CSR": 0xE000E010,
    "SYST_RVR": 0xE000E014, "SYST_CVR": 0xE000E018,
    # CFSR: MMFSR bits 0-7, BFSR 8-15, UFSR 16-31
    "CFSR_MMARVALID": 1 << 7, "CFSR_MSTKERR": 1 << 4, "CFSR_BFARVALID": 1 << 15,
    "CFSR_STKERR": 1 << 12,
}
#: bit positions cortexm.h's comments name, written as literals in the code that uses them
ARM_BITS = {"DEMCR.TRCENA": 24, "DWT_CTRL.CYCCNTENA": 0, "DWT_CTRL.NOCYCCNT": 25,
            "SHCSR.MEMFAULTENA": 16, "SHCSR.BUSFAULTENA": 17, "SHCSR.USGFAULTENA": 18,
            "DHCSR.C_DEBUGEN": 0, "CPACR.CP10_CP11": 20}
#: NVIC arrays (B3.4.3): farm13's interrupt-driven RX writes ISER; checked if defined
ARM_NVIC = {"NVIC_ISER": 0xE000E100, "NVIC_ICER": 0xE000E180, "NVIC_ISPR": 0xE000E200,
            "NVIC_ICPR": 0xE000E280, "NVIC_IPR": 0xE000E400}

#: the boards' link wiring (NUCLEO-F429ZI UM1974 §6.9; nRF52840-DK user guide, J-Link OB
#: VCP; micro:bit v1 schematic, interface MCU UART)
LINK_PINS = {"nrf52840dk": (6, 8), "microbit": (24, 25)}


@pytest.fixture(scope="module")
def stm32() -> Device:
    return load_device(STM32)


@pytest.fixture(scope="module")
def nrf52() -> Device:
    return load_device(NRF52)


@pytest.fixture(scope="module")
def nrf51() -> Device:
    return load_device(NRF51)


def common(*names: str) -> list[Path]:
    return [BOARDS / "common" / n for n in names]


def test_cortexm_system_registers_match_the_architecture() -> None:
    defs = c_defines(*common("cortexm.h"))
    seen = {n for n in defs if n in ARM_SCS}
    assert seen == set(ARM_SCS), f"cortexm.h lost {set(ARM_SCS) - seen}"
    for name, want in ARM_SCS.items():
        got = c_eval(defs[name], defs)
        assert got == want, f"{name}: {got:#x} != {want:#x}"
    for name, want in ARM_NVIC.items():
        if name in defs:
            assert c_eval(defs[name], defs) == want, name
    # the bit positions the code writes as literals (1u << 24 into DEMCR, ...)
    text = " ".join((BOARDS / "common" / f).read_text() for f in
                    ("cyccnt.c", "fault.c", "startup.c", "semihost.c"))
    assert f"SCB_DEMCR |= 1u << {ARM_BITS['DEMCR.TRCENA']}" in text
    assert f"DWT_CTRL & (1u << {ARM_BITS['DWT_CTRL.NOCYCCNT']})" in text
    assert f"DWT_CTRL |= {1 << ARM_BITS['DWT_CTRL.CYCCNTENA']}u" in text
    assert (f"(1u << {ARM_BITS['SHCSR.MEMFAULTENA']}) | (1u << {ARM_BITS['SHCSR.BUSFAULTENA']})"
            f" | (1u << {ARM_BITS['SHCSR.USGFAULTENA']})") in text
    assert f"SCB_DHCSR & {1 << ARM_BITS['DHCSR.C_DEBUGEN']}u" in text
    # Reset_Handler's FPU enable (assembly: before any C runs)
    assert f"ldr r0, =0x{ARM_SCS['SCB_CPACR']:08X}" in text
    assert f"ldr r2, =0x{0xF << ARM_BITS['CPACR.CP10_CP11']:08X}" in text


def test_nucleo_f429zi_registers_and_fields_match_st_svd(stm32: Device) -> None:
    defs = c_defines(*common("stm32_usart.h"), BOARDS / "nucleo-f429zi" / "board_config.h",
                     BOARDS / "nucleo-f429zi" / "board.c")
    checked = check_names(defs, stm32, {})
    # every register the board writes, and the fields its clock set-up uses
    for name in ("RCC_BASE", "RCC_CR", "RCC_PLLCFGR", "RCC_CFGR", "RCC_AHB1ENR", "RCC_APB1ENR",
                 "PWR_CR", "FLASH_ACR", "GPIOD_MODER", "GPIOD_OSPEEDR", "GPIOD_PUPDR",
                 "GPIOD_AFRH", "USART3_BASE", "RCC_CR_PLLON", "RCC_CR_PLLRDY",
                 "RCC_PLLCFGR_PLLM_Pos", "RCC_PLLCFGR_PLLN_Pos", "RCC_PLLCFGR_PLLP_Pos",
                 "RCC_PLLCFGR_PLLQ_Pos", "RCC_PLLCFGR_PLLSRC", "RCC_CFGR_SW_Pos",
                 "RCC_CFGR_SWS_Pos", "RCC_CFGR_HPRE_Pos", "RCC_CFGR_PPRE1_Pos",
                 "RCC_CFGR_PPRE2_Pos", "RCC_AHB1ENR_GPIODEN", "RCC_APB1ENR_USART3EN",
                 "RCC_APB1ENR_PWREN", "PWR_CR_VOS_Pos", "FLASH_ACR_LATENCY_Pos",
                 "FLASH_ACR_PRFTEN", "FLASH_ACR_ICEN", "FLASH_ACR_DCEN"):
        assert name in checked, f"{name} not defined (or not named after the SVD)"
    # the reserved-bit mask keeps exactly the bits no PLLCFGR field covers
    covered = 0
    for f in stm32.register("RCC.PLLCFGR").fields:
        covered |= f.mask
    assert c_eval(defs["PLLCFGR_RESERVED_BITS"], defs) == ~covered & 0xFFFFFFFF
    usart = stm32.peripheral("USART3")
    for reg in ("SR", "DR", "BRR", "CR1", "CR2", "CR3"):
        assert c_eval(defs[f"STM32_USART_{reg}"], defs) == usart.register(reg).offset, reg
    sr = usart.register("SR")
    for bit in ("TXE", "RXNE", "ORE"):
        assert c_eval(defs[f"STM32_USART_SR_{bit}"], defs) == sr.field(bit).mask, bit
    # stm32_usart_init's CR1 literal: UE, TE, RE
    cr1 = usart.register("CR1")
    usart_c = (BOARDS / "common" / "stm32_usart.c").read_text()
    want = " | ".join(f"(1u << {cr1.field(f).offset})" for f in ("UE", "TE", "RE"))
    assert want in usart_c, f"stm32_usart_init should set UE|TE|RE = {want}"
    # the link pins and their alternate function (UM1974 §6.9: USART3 = PD8/PD9, AF7)
    assert (c_eval(defs["LINK_TX_PIN"], defs), c_eval(defs["LINK_RX_PIN"], defs),
            c_eval(defs["LINK_AF"], defs)) == (8, 9, 7)
    gpio = stm32.peripheral("GPIOD")
    assert gpio.register("AFRH").field("AFRH8").offset == 4 * (8 - 8)
    assert gpio.register("MODER").field("MODER9").offset == 2 * 9


def test_nucleo_f429zi_clock_tree_follows_rm0090(stm32: Device) -> None:
    """RM0090 §6.3.2: f_VCO = f_in x N / M with f_in/M in 1..2 MHz and f_VCO in 100..432
    MHz, SYSCLK = f_VCO / P <= 180 MHz, USB/SDIO = f_VCO / Q = 48 MHz; APB1 <= 45 MHz,
    APB2 <= 90 MHz; Table 10: 5 wait states for 150 < HCLK <= 180 MHz at 2.7-3.6 V."""
    defs = c_defines(BOARDS / "nucleo-f429zi" / "board_config.h",
                     BOARDS / "nucleo-f429zi" / "board.c")
    v = {k: c_eval(defs[k], defs) for k in ("PLL_M", "PLL_N", "PLL_P", "PLL_Q", "APB1_DIV",
                                              "APB2_DIV", "WAIT_STATES", "TR_HSI_HZ",
                                              "TR_CLOCK_HZ")}
    assert v["TR_HSI_HZ"] == 16_000_000  # RM0090 §6.2.2
    vin = v["TR_HSI_HZ"] / v["PLL_M"]
    vco = vin * v["PLL_N"]
    assert 1e6 <= vin <= 2e6 and 100e6 <= vco <= 432e6
    assert v["PLL_P"] in (2, 4, 6, 8) and 2 <= v["PLL_Q"] <= 15
    assert vco / v["PLL_P"] == v["TR_CLOCK_HZ"] <= 180e6
    assert vco / v["PLL_Q"] == 48e6
    assert v["TR_CLOCK_HZ"] / v["APB1_DIV"] <= 45e6 and v["TR_CLOCK_HZ"] / v["APB2_DIV"] <= 90e6
    assert v["WAIT_STATES"] == -(-v["TR_CLOCK_HZ"] // 30_000_000) - 1 == 5
    # the field widths the values must fit (ST's SVD: PLLM0..5, PLLN0..8, PLLQ0..3)
    pll = stm32.register("RCC.PLLCFGR")
    assert v["PLL_M"] < 1 << span(pll, "PLLM").width and v["PLL_N"] < 1 << span(pll, "PLLN").width
    assert v["PLL_Q"] < 1 << span(pll, "PLLQ").width
    latency = stm32.register("FLASH.ACR").field("LATENCY")
    assert v["WAIT_STATES"] < 1 << latency.width


def test_stm32_brr_gives_the_baud_rate_rm0090_says() -> None:
    """The BRR expression of stm32_usart_init, evaluated with C integer arithmetic, against
    RM0090 §30.3.4 (baud = f_PCLK / (16 x USARTDIV), OVER8 = 0) and Table 80 (42 MHz,
    115200: USARTDIV 22.8125, i.e. BRR 0x16D)."""
    src = (BOARDS / "common" / "stm32_usart.c").read_text()
    m = re.search(r"STM32_USART_BRR\)\s*=\s*([^;]+);", src)
    assert m, "stm32_usart_init no longer writes BRR in one expression"
    expr = m.group(1)
    if expr.strip().startswith("stm32_usart_brr("):  # the value comes from the header's helper
        hdr = (BOARDS / "common" / "stm32_usart.h").read_text()
        h = re.search(r"const uint32_t brr = ([^;]+);", hdr)
        assert h, "stm32_usart_brr no longer computes BRR in one expression"
        expr = re.sub(r"\((?:u?int(?:8|16|32|64)_t)\)", "", h.group(1)).replace("2u", "2")
    for pclk, baud, table_brr in ((42_000_000, 115_200, 0x16D), (84_000_000, 115_200, None),
                                  (16_000_000, 115_200, None)):
        brr = c_eval(expr, {"pclk_hz": str(pclk), "baud": str(baud)})
        usartdiv = (brr >> 4) + (brr & 0xF) / 16
        actual = pclk / (16 * usartdiv)
        assert abs(actual - baud) / baud < 0.01, (pclk, brr, actual)
        if table_brr is not None:
            assert brr == table_brr


def test_netduinoplus2_registers_match_the_stm32f4_map(stm32: Device) -> None:
    """STM32F405 (QEMU netduinoplus2) shares RCC, GPIOA and USART1 with the F429."""
    defs = c_defines(*common("stm32_usart.h"), BOARDS / "netduinoplus2" / "board.c")
    checked = check_names(defs, stm32, {})
    assert {"RCC_AHB1ENR", "RCC_APB2ENR", "GPIOA_MODER", "GPIOA_AFRH", "USART1_BASE"} <= \
        set(checked)


@pytest.mark.parametrize("svd", [NRF52, NRF51])
def test_nordic_uart_clock_gpio_match_svd(svd: str) -> None:
    dev = load_device(svd)
    defs = c_defines(*common("nrf_uart.h", "nrf_uart.c"))
    # nrf_uart.c names the UART registers by their SVD names, as offsets from the base
    uart = dev.peripheral("UART0")
    offsets = {n: c_eval(b, defs) for n, b in defs.items() if n.startswith(("TASKS_",
               "EVENTS_", "PSEL")) or n in ("ERRORSRC", "ENABLE", "RXD", "TXD", "BAUDRATE",
                                             "CONFIG")}
    assert len(offsets) >= 16
    by_name = {r.name.replace("PSEL_", "PSEL"): r.offset for r in uart.registers}
    for name, off in offsets.items():
        assert by_name.get(name) == off, f"{name} = {off:#x}, SVD UART0.{name} at " \
                                         f"{by_name.get(name)}"
    assert c_eval(defs["NRF_UART0_BASE"], defs) == uart.base
    gpio = "P0" if "P0" in dev.peripherals else "GPIO"
    checked = check_names(defs, dev, {"GPIO": gpio})
    assert {"GPIO_BASE", "GPIO_OUTSET", "GPIO_DIRSET", "CLOCK_BASE", "CLOCK_TASKS_HFCLKSTART",
            "CLOCK_EVENTS_HFCLKSTARTED"} <= set(checked)
    # the values nrf_uart_init writes: ENABLE = 4 (legacy UART), BAUDRATE for 115200
    enable = dict(uart.register("ENABLE").field("ENABLE").values)
    assert enable["Enabled"] == 4
    assert "UART(ENABLE) = 4u" in (BOARDS / "common" / "nrf_uart.c").read_text()
    baud = dict(uart.register("BAUDRATE").field("BAUDRATE").values)["Baud115200"]
    assert c_eval(defs["NRF_UART_BAUD_115200"], defs) == baud
    # PS §6.33.10: the register is ~ baud x 2^32 / 16 MHz (the SVD value, rounded)
    assert abs(baud - 115_200 * 2**32 / 16e6) / baud < 0.001
    # PSEL: the pin number in bits 0-4, CONNECT (bit 31) = 0 connects
    psel = uart.register("PSEL_TXD" if "PSEL_TXD" in {r.name for r in uart.registers}
                         else "PSELTXD")
    if psel.fields and any(f.name == "CONNECT" for f in psel.fields):
        assert psel.field("CONNECT").offset == 31 and psel.field("PIN").offset == 0


@pytest.mark.parametrize("board", sorted(LINK_PINS))
def test_nordic_link_pins(board: str) -> None:
    defs = c_defines(BOARDS / board / "board_config.h")
    assert (c_eval(defs["TR_UART_TX_PIN"], defs), c_eval(defs["TR_UART_RX_PIN"], defs)) == \
        LINK_PINS[board]


@pytest.mark.parametrize(("board", "svd", "irqs"), [("nucleo-f429zi", STM32, 91),
                                                      ("nrf52840dk", NRF52, 48),
                                                      ("microbit", NRF51, 32)])
def test_vector_table_size_matches_the_device(board: str, svd: str, irqs: int) -> None:
    """TR_N_IRQS covers every interrupt the SVD lists (the highest number + 1)."""
    defs = c_defines(BOARDS / board / "board_config.h")
    n = c_eval(defs["TR_N_IRQS"], defs)
    highest = max(i for p in load_device(svd).peripherals.values() for _, i in p.interrupts)
    assert n == irqs and n >= highest + 1, (n, highest)
