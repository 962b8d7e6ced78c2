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
        for (unsigned p = 0; p < sizeof pclks / sizeof pclks[0]; p++)
            printf("stm32 %%u %%u %%u\ncmsdk %%u %%u %%u\n", pclks[p], rates[r],
                   stm32_usart_brr(pclks[p], rates[r]), pclks[p], rates[r],
                   cmsdk_uart_bauddiv(pclks[p], rates[r]));
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
