"""A real board behind a debug probe, flashed with pyocd.

`start()`:
1. the prebuilt image for the board (sha256-checked against the manifest);
2. the probe: the lab config's unique id, or with `probe: auto` any attached probe whose
   board reports this target type (ST-LINK and DAPLink say which board they sit on;
   a J-Link does not: name its serial number in the lab config);
3. the board's serial port: `port:` from the lab config, else the USB serial port whose
   serial number is the probe's (ST-LINK/V2-1, DAPLink and J-Link OB put the board's
   UART on a CDC port of the probe itself);
4. unless `flash: always`, HELLO on that port: if the running firmware is already the
   manifest's build, nothing is flashed (a test session starts in ~1 s instead of ~10 s);
5. otherwise pyocd programs the ELF (with progress), the flashed ranges are read back and
   compared (CRC-32 per segment, first differing address on failure), the core is reset,
   and the port is reopened, waiting up to `open_timeout_s` for a USB re-enumeration.
The caller (`rig.connection.connect`) then checks HELLO against the manifest, so a board that
runs something else after all this fails with a precise FirmwareMismatch.

pyocd is imported lazily (0.5 s) and only probed with `blocking=False`, so a lab config
listing boards costs nothing when none is attached: `auto` and `--target all` skip them.
Tests replace `ConnectHelper`, `FileProgrammer` and `list_ports` in this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from serial.tools import list_ports

from rig.config import Board
from rig.elf import load_segments
from rig.errors import (
    ConfigError,
    FirmwareMismatch,
    FlashVerifyError,
    LinkError,
    PortBusy,
    ProbeNotFound,
    RigError,
    TargetUnavailable,
    WrongTarget,
)
from rig.firmware import FirmwareImage, FirmwareNotFound, check_hello, image_for
from rig.link.link import Link
from rig.link.transport import SerialTransport, Transport
from rig.locks import TargetLocks, port_resource
from rig.protocol import MsgType
from rig.target_options import PyocdOptions
from rig.targets.base import FlashReport, Target, register_target

log = logging.getLogger(__name__)

#: pyocd entry points; None until first use (`_pyocd()`), replaced by fakes in tests
ConnectHelper: Any = None
FileProgrammer: Any = None

APT_PYOCD = "pip install 'tinyrig[boards]'"

#: chip identity registers read after connecting: pyocd target -> (address, mask, value, what)
CHIP_IDS: dict[str, tuple[int, int, int, str]] = {
    "stm32f429xi": (0xE0042000, 0xFFF, 0x419, "DBGMCU_IDCODE.DEV_ID (0x419 = STM32F42x/43x)"),
    "stm32f429xg": (0xE0042000, 0xFFF, 0x419, "DBGMCU_IDCODE.DEV_ID (0x419 = STM32F42x/43x)"),
    "nrf52840": (0x10000100, 0xFFFFFFFF, 0x52840, "FICR.INFO.PART (0x52840)"),
}

_PROBE_CACHE_S = 2.0
_probe_cache: tuple[float, list[Any]] | None = None


def _pyocd() -> tuple[Any, Any]:
    """(ConnectHelper, FileProgrammer), importing pyocd on first use."""
    global ConnectHelper, FileProgrammer
    if ConnectHelper is None or FileProgrammer is None:
        try:
            from pyocd.core.helpers import ConnectHelper as _CH
            from pyocd.flash.file_programmer import FileProgrammer as _FP
        except ImportError as exc:
            raise TargetUnavailable(f"pyocd is not installed ({exc}); install it with "
                                    f"`{APT_PYOCD}`") from exc
        ConnectHelper = ConnectHelper or _CH
        FileProgrammer = FileProgrammer or _FP
    return ConnectHelper, FileProgrammer


#: USB vendor ids of debug-probe makers pyocd talks to (ST-LINK, SEGGER J-Link, Arm
#: DAPLink/mbed, NXP LPC-Link/MCU-Link, Keil ULINK, Raspberry Pi picoprobe, Microchip), and
#: product-name words of CMSIS-DAP probes from anyone else
_PROBE_VENDORS = frozenset({"0483", "1366", "0d28", "1fc9", "c251", "2e8a", "03eb"})
_PROBE_WORDS = ("cmsis-dap", "daplink", "j-link", "st-link", "stlink", "probe")
_SYS_USB = Path("/sys/bus/usb/devices")


def usb_probe_candidates(root: Path = _SYS_USB) -> bool | None:
    """Whether any attached USB device could be a debug probe, from Linux sysfs alone (no
    pyocd import, no USB access: ~1 ms instead of ~0.35 s). None when sysfs does not say
    (another OS): then only pyocd can tell."""
    if not root.is_dir():
        # Linux with sysfs but no USB bus (a container without USB): nothing can be attached
        return False if root.parent.parent.is_dir() and sys.platform.startswith("linux") \
            else None
    for dev in root.iterdir():
        try:
            vendor = (dev / "idVendor").read_text().strip().lower()
        except OSError:
            continue  # interfaces and hubs without ids
        if vendor in _PROBE_VENDORS:
            return True
        with contextlib.suppress(OSError):
            product = (dev / "product").read_text().lower()
            if any(word in product for word in _PROBE_WORDS):
                return True
    return False


def connected_probes(max_age_s: float = _PROBE_CACHE_S) -> list[Any]:
    """Attached probes (`ConnectHelper.get_all_connected_probes(blocking=False)`), cached
    for a moment so choosing among several targets enumerates USB once. Where sysfs shows
    no USB device that could be a probe, pyocd is not even imported (unless already)."""
    global _probe_cache
    now = time.monotonic()
    if _probe_cache is not None and now - _probe_cache[0] < max_age_s:
        return _probe_cache[1]
    if ConnectHelper is None and usb_probe_candidates() is False:
        _probe_cache = (now, [])
        return []
    helper, _ = _pyocd()
    probes = list(helper.get_all_connected_probes(blocking=False) or [])
    _probe_cache = (now, probes)
    return probes


def forget_probes() -> None:
    """Drop the probe cache (after plugging, flashing, or in tests)."""
    global _probe_cache
    _probe_cache = None


def probe_target_type(probe: Any) -> str | None:
    """The pyocd target type the probe's board reports (ST-LINK/DAPLink board id), or None."""
    info = getattr(probe, "associated_board_info", None)
    return getattr(info, "target", None) or None


def probe_board_name(probe: Any) -> str:
    info = getattr(probe, "associated_board_info", None)
    return getattr(info, "name", None) or getattr(probe, "description", "") or "unknown board"


def describe_probe(probe: Any) -> str:
    kind = probe_target_type(probe)
    return (f"{probe.unique_id} ({probe_board_name(probe)}"
            + (f", target {kind})" if kind else ", target type unknown)"))


def _norm_serial(s: str | None) -> str:
    """USB serial numbers as the OS and pyocd spell them: J-Link ids are zero-padded by
    the USB descriptor ("000683123456") but not by pyocd ("683123456")."""
    return (s or "").strip().upper().lstrip("0")


def ports_of_probe(unique_id: str) -> list[Any]:
    """Serial ports (list_ports entries) of the USB device with the probe's serial number,
    lowest interface first."""
    want = _norm_serial(unique_id)
    found = [p for p in list_ports.comports() if want and _norm_serial(p.serial_number) == want]
    return sorted(found, key=lambda p: (getattr(p, "interface", None) or "", p.device))


def port_holders(path: str) -> list[str]:
    """Best effort (Linux /proc): 'pid (command)' of processes that have `path` open."""
    try:
        target = os.path.realpath(path)
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            fd_dir = f"/proc/{pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:  # another user's process, or gone
                continue
            links = set()
            for fd in fds:
                with contextlib.suppress(OSError):  # fds come and go while we look
                    links.add(os.readlink(os.path.join(fd_dir, fd)))
            if target in links:
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    comm = "?"
                out.append(f"{pid} ({comm})")
        return out
    except OSError:
        return []


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("busy", "exclusively lock", "resource temporarily "
                                   "unavailable", "errno 16", "errno 11"))


@register_target
class PyocdTarget(Target):
    """Options (lab_config.yaml `targets.<name>`): `board` (a `Board` with `pyocd_target`),
    `probe` (unique id or `auto`), `frequency_hz` (SWD clock), `port` (the board's UART;
    default: found by the probe's USB serial number), `baudrate`, `flash` (auto: skip
    when HELLO reports the manifest's build; always; never), `open_timeout_s` (how long
    the port may take to come back after a reset)."""

    kind = "pyocd"
    hardware = True

    options_type = PyocdOptions
    options: PyocdOptions

    def __init__(self, name: str, options: PyocdOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        super().__init__(name, options, board)
        board = self.board
        if board is None or not getattr(board, "pyocd_target", None):
            raise ConfigError(f"target {name!r}: a pyocd target needs a board with "
                              "pyocd_target: (e.g. stm32f429xi, nrf52840)")
        self.board: Board = board
        self.counter_label = board.counter_label
        opts = self.options
        self.probe_id = opts.probe
        self.frequency_hz = opts.frequency_hz
        self.port = opts.port
        self.baudrate = opts.baudrate
        self.flash_mode = opts.flash  # flash() overrides it for one start
        self.open_timeout_s = opts.open_timeout_s
        self.hello_timeout_s = opts.hello_timeout_s
        self.progress: Callable[[float], None] | None = None  # set by flash()
        self._image_override: FirmwareImage | None = None
        self.image: FirmwareImage | None = None
        self.probe: Any = None
        self.flashed = False  # did the last start() program the flash?
        self.events: list[str] = []  # what start/reset did, for diagnostics()
        self._transport: Transport | None = None
        self._port_url: str | None = None
        #: probe and port locks (rig.locks), held from start to close
        self.locks = TargetLocks.for_target(f"pyocd:{name}", self.options)

    # -- Target API -----------------------------------------------------------------------

    def start(self) -> Transport:
        if self._transport is not None:
            raise RigError(f"{self.describe()}: already started; close() it first")
        self.events = []
        self.flashed = False
        self.image = self._image_override or image_for(self.board.firmware)
        self.probe = self._find_probe()
        try:
            self.locks.take(f"probe:{self.probe.unique_id}")
            return self._start_locked()
        except BaseException:
            self.locks.release_all()
            raise

    def _start_locked(self) -> Transport:
        assert self.image is not None
        if self.flash_mode != "always":
            transport = self._running_matches()
            if transport is not None:
                self._transport = transport
                return transport
        if self.flash_mode == "never":
            self._note("flash: never; using the port as it is")
        else:
            self.flash_image(self.image.path)
        self._transport = self._open_port(self.open_timeout_s)
        return self._transport

    def flash(self, image: FirmwareImage | None = None,
              progress: Callable[[float], None] | None = None, *,
              if_needed: bool = False) -> FlashReport:
        """`Flashable`: program `image` (None: the manifest's image for the board), read it
        back, reset, open the port. `if_needed`: skip programming when HELLO already
        reports the build (the `flash: auto` path)."""
        saved = self.flash_mode, self.progress, self._image_override
        self.flash_mode = "auto" if if_needed else "always"
        self.progress, self._image_override = progress, image
        try:
            transport = self.start()
        finally:
            self.flash_mode, self.progress, self._image_override = saved
        return FlashReport(self.flashed, tuple(self.events), transport)

    def reset(self) -> Transport:
        """Reset the core through the probe (no re-flash) and reopen the port."""
        if self.probe is None:
            return super().reset()
        if self._transport is not None:  # keep the locks across the reset
            self._transport.close()
            self._transport = None
        self._with_session(lambda session: session.target.reset(), "reset")
        self._note("core reset through the probe")
        self._transport = self._open_port(self.open_timeout_s)
        return self._transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.locks.release_all()

    def unavailable_reason(self) -> str | None:
        try:
            probes = connected_probes()
        except TargetUnavailable as exc:
            return str(exc)
        except Exception as exc:  # a USB backend error must not break target selection
            return f"cannot list debug probes: {exc}"
        try:
            self.choose_probe(probes)
        except TargetUnavailable as exc:
            return str(exc)
        return None

    def expected_firmware(self) -> FirmwareImage | None:
        if self.image is not None:
            return self.image
        try:
            return image_for(self.board.firmware, verify=False)
        except (FirmwareNotFound, FirmwareMismatch):
            return None

    def describe(self) -> str:
        probe = self.probe.unique_id if self.probe is not None else self.probe_id
        return (f"pyocd:{self.name} ({self.board.name}, {self.board.pyocd_target}, probe "
                f"{probe}, port {self._port_url or self.port or 'by USB serial'})")

    def diagnostics(self) -> str:
        state = "open" if self._transport is not None else "closed"
        lines = [f"{self.describe()}: port {state}"]
        lines += [f"  {e}" for e in self.events[-20:]]
        return "\n".join(lines)

    # -- probe ----------------------------------------------------------------------------

    def _find_probe(self) -> Any:
        probes = connected_probes(max_age_s=0)
        return self.choose_probe(probes)

    def choose_probe(self, probes: Sequence[Any]) -> Any:
        want = self.board.pyocd_target
        seen = ", ".join(describe_probe(p) for p in probes) or "none"
        if self.probe_id != "auto":
            matching = [p for p in probes if self.probe_id.lower() in p.unique_id.lower()]
            if not matching:
                raise ProbeNotFound(f"{self.name}: debug probe {self.probe_id} is not attached "
                                    f"(attached probes: {seen}); plug it in or fix "
                                    f"targets.{self.name}.probe in the lab config")
            probe = matching[0]
            kind = probe_target_type(probe)
            if kind is not None and kind != want:
                raise WrongTarget(f"{self.name}: probe {probe.unique_id} sits on a "
                                  f"{probe_board_name(probe)} (pyocd target {kind}), but "
                                  f"board {self.board.name} is a {want}; wrong probe id in "
                                  f"targets.{self.name}.probe?")
            return probe
        matching = [p for p in probes if probe_target_type(p) == want]
        if not matching:
            unknown = [p.unique_id for p in probes if probe_target_type(p) is None]
            hint = (f"; probes that do not report their board ({', '.join(unknown)}) are "
                    f"only used when named: set targets.{self.name}.probe" if unknown else "")
            raise ProbeNotFound(f"{self.name}: no debug probe for a {want} "
                                f"({self.board.name}) is attached (attached probes: {seen})"
                                + hint)
        return matching[0]

    def _with_session(self, action: Callable[[Any], Any], what: str) -> Any:
        helper, _ = _pyocd()
        options: dict[str, Any] = {}
        if self.frequency_hz:
            options["frequency"] = self.frequency_hz
        try:
            session = helper.session_with_chosen_probe(
                blocking=False, unique_id=self.probe.unique_id,
                target_override=self.board.pyocd_target, options=options)
        except RigError:
            raise
        except Exception as exc:
            raise TargetUnavailable(f"{self.name}: pyocd could not open probe "
                                    f"{self.probe.unique_id} for {what}: {exc}") from exc
        if session is None:
            forget_probes()
            raise ProbeNotFound(f"{self.name}: debug probe {self.probe.unique_id} disappeared "
                                f"before {what} (unplugged?)")
        try:
            with session:
                self._check_chip(session)
                return action(session)
        except RigError:
            raise
        except Exception as exc:
            raise TargetUnavailable(f"{self.name}: {what} through probe "
                                    f"{self.probe.unique_id} failed: {exc}") from exc

    def _check_chip(self, session: Any) -> None:
        ident = CHIP_IDS.get(self.board.pyocd_target or "")
        if ident is None:
            return
        addr, mask, value, what = ident
        got = int(session.target.read32(addr)) & mask
        if got != value:
            raise WrongTarget(f"{self.name}: the chip behind probe {self.probe.unique_id} reads "
                              f"{what.split(' ')[0]} = 0x{got:x}, expected 0x{value:x} "
                              f"({what}); it is not a {self.board.pyocd_target}")

    # -- flashing -------------------------------------------------------------------------

    def flash_image(self, path: Path) -> None:
        """Program `path` (ELF), read it back and compare, reset the core."""
        segments = load_segments(path)
        _, programmer = _pyocd()
        last = [-1.0]

        def progress(fraction: float) -> None:
            if self.progress is not None:
                self.progress(fraction)
            if fraction >= last[0] + 0.25 or fraction >= 1.0:
                last[0] = fraction
                log.info("%s: flashing %s: %3.0f %%", self.name, path.name, 100 * fraction)

        def program(session: Any) -> None:
            t0 = time.monotonic()
            programmer(session, progress=progress).program(str(path), file_format="elf")
            self._note(f"flashed {path} ({sum(len(s.data) for s in segments)} B in "
                       f"{len(segments)} segment(s), {time.monotonic() - t0:.1f} s)")
            self._verify(session, segments, path)
            session.target.reset()
            self._note("verified by read-back; core reset")

        self._with_session(program, "flashing")
        self.flashed = True
        forget_probes()

    def _verify(self, session: Any, segments: Sequence[Any], path: Path) -> None:
        for seg in segments:
            back = bytes(session.target.read_memory_block8(seg.address, len(seg.data)))
            if zlib.crc32(back) == zlib.crc32(seg.data) and back == seg.data:
                continue
            first = next((i for i, (a, b) in enumerate(zip(back, seg.data, strict=False))
                          if a != b), min(len(back), len(seg.data)))
            wrote = seg.data[first] if first < len(seg.data) else None
            read = back[first] if first < len(back) else None
            self._note(f"verify FAILED at 0x{seg.address + first:08x}")
            raise FlashVerifyError(
                f"{self.name}: flash verify failed for {path.name}: segment 0x{seg.address:08x}"
                f"..0x{seg.end:08x} reads back with CRC-32 0x{zlib.crc32(back):08x}, the image "
                f"has 0x{zlib.crc32(seg.data):08x}; first difference at "
                f"0x{seg.address + first:08x} (wrote {_hex(wrote)}, read {_hex(read)}). "
                "Flash protected (RDP / APPROTECT), worn, or a bad SWD connection? Try a "
                "lower frequency_hz, or `pyocd erase --chip` and flash again")

    # -- serial port ----------------------------------------------------------------------

    def _running_matches(self) -> Transport | None:
        """Open the port and ask HELLO: the transport if the firmware is already the
        manifest's build, else None (port closed). A busy port is an error right away."""
        assert self.image is not None
        try:
            transport = self._open_port(min(self.open_timeout_s, 1.0))
        except PortBusy:
            raise
        except TargetUnavailable as exc:
            self._note(f"no port before flashing ({exc}); flashing")
            return None
        try:
            link = Link(transport, timeout=self.hello_timeout_s, retries=1)
            link.request(MsgType.HELLO)
            assert link.hello is not None
            check_hello(link.hello, self.image, where=self.describe())
        except (RigError, AssertionError) as exc:
            transport.close()
            if self.flash_mode == "never":
                # leave the verdict to the caller's HELLO check (FirmwareMismatch)
                self._note(f"running firmware: {str(exc).splitlines()[0]}")
                return self._open_port(self.open_timeout_s)
            self._note(f"running firmware needs flashing: {str(exc).splitlines()[0]}")
            return None
        self._note(f"running firmware is already build {self.image.source_hash[:12]}: "
                   "not flashed")
        return transport

    def _open_port(self, timeout_s: float) -> Transport:
        """Open the board's port, looking it up by USB serial number on every attempt (its
        device path can change when the probe re-enumerates after a reset)."""
        deadline = time.monotonic() + timeout_s
        last = "not found"
        while True:
            url = self.port or self._port_by_serial()
            if url is not None:
                self.locks.take(port_resource(url))
                try:
                    transport = SerialTransport(url, baudrate=self.baudrate, open_timeout=0)
                except LinkError as exc:
                    last = str(exc)
                    if _is_busy(exc) and time.monotonic() >= deadline:
                        holders = port_holders(url) if "://" not in url else []
                        held = f" (held by {', '.join(holders)})" if holders else ""
                        raise PortBusy(
                            f"{self.name}: serial port {url} is in use by another "
                            f"process{held}; close the terminal (minicom, screen, another "
                            "rig) that has it open") from exc
                else:
                    self._port_url = url
                    self._note(f"port {url} open")
                    return transport
            if time.monotonic() >= deadline:
                where = self.port or (f"the USB serial port of probe "
                                      f"{self.probe.unique_id if self.probe else '?'}")
                raise TargetUnavailable(
                    f"{self.name}: {where} did not appear within {timeout_s:g} s ({last}); "
                    "is the board's USB cable in, and the virtual COM port enabled? Or set "
                    f"targets.{self.name}.port")
            time.sleep(0.1)

    def _port_by_serial(self) -> str | None:
        if self.probe is None:
            return None
        ports = ports_of_probe(self.probe.unique_id)
        return ports[0].device if ports else None

    def _note(self, text: str) -> None:
        self.events.append(text)
        log.debug("%s: %s", self.name, text)


def _hex(b: int | None) -> str:
    return "nothing" if b is None else f"0x{b:02x}"


def list_targets_probes() -> list[tuple[Any, list[Any]]]:
    """(probe, its serial ports) for every attached probe: `rig list`."""
    with contextlib.suppress(TargetUnavailable):
        return [(p, ports_of_probe(p.unique_id)) for p in connected_probes(max_age_s=0)]
    return []


__all__ = ["PyocdTarget", "connected_probes", "forget_probes", "list_targets_probes",
           "port_holders", "ports_of_probe"]
