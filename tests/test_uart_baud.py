"""Per-board UART baud register values (firmware/boards/*) against the reference manuals:
the firmware's functions, compiled for the host, next to the formulas and tables computed
here independently (STM32 RM0090 USART BRR with OVER8 = 0; the nRF52840/nRF51 BAUDRATE
enumeration from the vendors' SVD files that pyocd ships; CMSDK APB UART BAUDDIV)."""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ROOT / "firmware" / "boards"
RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1_000_000, 2_000_000)
PCLKS = (42_000_000, 45_000_000, 84_000_000, 90_000_000, 16_000_000, 25_000_000)

HARNESS = r"""
#include <stdio.h>
#include "stm32_usart.h"
#include "nrf_uart.h"
#include "uart.h"
int main(void) {
    static const unsigned rates[] = {%(rates)s};
    static const unsigned pclks[] = {%(pclks)s};
    for (unsigned r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        printf("nrf %%u %%u\n", rates[r], nrf_uart_baud_reg(rates[r]));
        printf("nrf_actual %%u %%u\n", rates[r], nrf_uart_actual_baud(nrf_uart_baud_reg(rates[r])));
        for (unsigned p = 0; p < sizeof pclks / sizeof pclks[0]; p++) {
            printf("stm32 %%u %%u %%u\ncmsdk %%u %%u %%u\n", pclks[p], rates[r],
                   stm32_usart_brr(pclks[p], rates[r]), pclks[p], rates[r],
                   cmsdk_uart_bauddiv(pclks[p], rates[r]));
            printf("stm32_actual %%u %%u %%u\ncmsdk_actual %%u %%u %%u\n", pclks[p], rates[r],
                   stm32_usart_actual_baud(pclks[p], rates[r]), pclks[p], rates[r],
                   cmsdk_uart_actual_baud(pclks[p], rates[r]));
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def firmware_values(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, int]:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    tmp = tmp_path_factory.mktemp("baud")
    src = tmp / "baud.c"
    src.write_text(HARNESS % {"rates": ", ".join(map(str, RATES)),
                              "pclks": ", ".join(map(str, PCLKS))})
    exe = tmp / "baud"
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(BOARDS / "common"),
                    "-I", str(BOARDS / "mps2-an386"), str(src), "-o", str(exe)], check=True)
    values: dict[tuple, int] = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        kind, *nums = line.split()
        *key, value = map(int, nums)
        values[(kind, *key)] = value
    return values


def rm0090_brr(pclk: int, baud: int) -> int:
    """RM0090 §30.3.4, OVER8 = 0: mantissa and fraction of USARTDIV = fPCLK / (16·baud)."""
    usartdiv = pclk / (16 * baud)
    mantissa = math.floor(usartdiv)
    fraction = math.floor((usartdiv - mantissa) * 16 + 0.5)
    if fraction == 16:  # the fraction overflows into the mantissa
        mantissa, fraction = mantissa + 1, 0
    if mantissa < 1 or mantissa > 0xFFF:
        return 0
    return mantissa << 4 | fraction


def test_stm32_usart_brr_is_the_reference_manual_mantissa_and_fraction(firmware_values) -> None:
    for pclk in PCLKS:
        for baud in RATES:
            brr = rm0090_brr(pclk, baud)
            assert firmware_values[("stm32", pclk, baud)] == brr, (pclk, baud)
            if brr:  # the rate that BRR really gives stays within 3 % (ST's usual limit)
                actual = pclk / (16 * ((brr >> 4) + (brr & 15) / 16))
                assert abs(actual - baud) / baud < 0.03, (pclk, baud, actual)
    # RM0090's error table for fPCLK = 42 MHz: 115.2 kbps → USARTDIV 22.8125 = 0x16D
    assert firmware_values[("stm32", 42_000_000, 115200)] == 0x16D


def _svd_baudrates(device: str) -> dict[int, int]:
    spec = importlib.util.find_spec("pyocd")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pyocd (with its SVD files) is not installed")
    archive = Path(spec.submodule_search_locations[0]) / "debug" / "svd" / "svd_data.zip"
    with zipfile.ZipFile(archive) as z:
        text = z.read(f"{device}.svd").decode()
    # the UART (legacy, not UARTE) BAUDRATE register's enumerated values
    uart = text[text.index("<name>UART0</name>"):]
    reg = uart[uart.index("<name>BAUDRATE</name>"):]
    reg = reg[:reg.index("</register>")]
    out = {}
    for name, value in re.findall(r"<name>Baud(\d+M?)</name>.*?<value>(0x[0-9A-Fa-f]+)</value>",
                                  reg, re.S):
        rate = 1_000_000 if name == "1M" else int(name)
        out[rate] = int(value, 16)
    return out


@pytest.mark.parametrize("device", ["nrf52840", "nrf51"])
def test_nrf_uart_baudrate_values_match_the_vendor_table(firmware_values, device: str) -> None:
    table = _svd_baudrates(device)
    assert table[115200] == 0x01D7E000  # the parse found the right register
    for baud in RATES:
        fw = firmware_values[("nrf", baud)]
        assert fw == table.get(baud, 0), (device, baud, hex(fw))


def test_cmsdk_bauddiv(firmware_values) -> None:
    for pclk in PCLKS:
        for baud in RATES:
            div = pclk // baud  # CMSDK APB UART TRM: baud = PCLK / BAUDDIV, BAUDDIV >= 16
            assert firmware_values[("cmsdk", pclk, baud)] == (div if div >= 16 else 0)
    assert firmware_values[("cmsdk", 25_000_000, 115200)] == 217  # the mps2-an386 setting


# ---- the rates a board offers for BAUD_SET (hal_board.c): within 2 % of the nominal rate --

LINK_CANDIDATES = (115200, 230400, 460800, 921600, 1_000_000, 2_000_000)


def stm32_actual(pclk: int, baud: int) -> float:
    """RM0090 §30.3.4: baud = fPCLK / (16 x USARTDIV), USARTDIV from BRR's mantissa/fraction."""
    brr = rm0090_brr(pclk, baud)
    return pclk / (16 * ((brr >> 4) + (brr & 15) / 16)) if brr >= 16 else 0.0


def cmsdk_actual(pclk: int, baud: int) -> float:
    div = pclk // baud  # CMSDK APB UART TRM: baud = PCLK / BAUDDIV, BAUDDIV >= 16
    return pclk / div if div >= 16 else 0.0


def nrf_actual(reg: int) -> float:
    """nRF52840 PS §6.33.10: BAUDRATE holds the rate in units of 16 MHz / 2^32."""
    return reg * 16e6 / 2**32


def offered(actual: dict[int, float]) -> tuple[int, ...]:
    return tuple(b for b in LINK_CANDIDATES if actual[b] and abs(actual[b] - b) <= 0.02 * b)


#: board -> the rates its link should offer, from the manuals' formulas and its UART clock
#: (board_config.h: mps2 UART PCLK 25 MHz, netduinoplus2 USART1 on APB2 84 MHz, nucleo
#: USART3 on APB1 42 MHz, the nRFs' fixed BAUDRATE table)
def expected_offers() -> dict[str, tuple[int, ...]]:
    table = _svd_baudrates("nrf52840")
    nrf = offered({b: nrf_actual(table.get(b, 0)) for b in LINK_CANDIDATES})
    return {
        "mps2-an386": offered({b: cmsdk_actual(25_000_000, b) for b in LINK_CANDIDATES}),
        "netduinoplus2": offered({b: stm32_actual(84_000_000, b) for b in LINK_CANDIDATES}),
        "nucleo-f429zi": offered({b: stm32_actual(42_000_000, b) for b in LINK_CANDIDATES}),
        "microbit": nrf, "nrf52840dk": nrf,
    }


def test_actual_rates_follow_the_reference_formulas(firmware_values) -> None:
    """The *_actual_baud helpers (what the 2 % check in hal_board.c uses) against the rate
    each manual says its register value gives."""
    for pclk in PCLKS:
        for baud in RATES:
            assert firmware_values[("stm32_actual", pclk, baud)] == round(stm32_actual(pclk, baud))
            assert firmware_values[("cmsdk_actual", pclk, baud)] == round(cmsdk_actual(pclk, baud))
    for baud in RATES:
        reg = firmware_values[("nrf", baud)]
        assert firmware_values[("nrf_actual", baud)] == round(nrf_actual(reg))


def test_boards_offer_these_rates() -> None:
    """The fast rates each board can make: 1 M on every board, 2 M where the UART clock
    divides it exactly (the STM32s), 921600 within 2 % everywhere."""
    offers = expected_offers()
    assert offers["mps2-an386"] == (115200, 230400, 460800, 921600, 1_000_000)  # 25 MHz / 12 < 16
    assert offers["netduinoplus2"] == LINK_CANDIDATES
    assert offers["nucleo-f429zi"] == LINK_CANDIDATES
    assert offers["nrf52840dk"] == (115200, 230400, 460800, 921600, 1_000_000)  # UART max 1 M
