"""A board in a labgrid farm: the target acquires a labgrid *place* (by name, or by tags
such as `board=nucleo-f429zi`) from a `labgrid-coordinator`, talks to the firmware through
the place's `NetworkSerialPort` (ser2net on the exporter host, RFC 2217 → pyserial
`rfc2217://host:port?ign_set_control`; `raw` → `socket://host:port`), and releases the
place on close — also after Ctrl-C, at interpreter exit, and (through a watchdog process,
rig.labgrid_client) after the rig was killed.

Flashing. A place whose resources include a `RigNetworkGdbServer` (a GDB server on the
exporter host: `pyocd gdbserver` on the board's probe, or an emulator's gdbstub, exported
by `python -m rig.labgrid_exporter`) is flashed through it by tinyrig's labgrid driver
(rig.labgrid_flash: load, compare-sections, reset). A place with only a debug-probe
resource (`NetworkUSBDebugger`) needs labgrid's own `PyOCDDriver`, which labgrid 26.0.1
does not ship: then a clear error (export the probe as `RigPyOCDGdbServer`, or set
`flash: never`). `flash: auto` flashes when HELLO does not already report the manifest's
build; a place with neither resource is not flashed.

Options (lab_config.yaml): `coordinator` (HOST:PORT; default `$LG_COORDINATOR`, else
127.0.0.1:20408), `place` (a place name) and/or `tags` (a mapping every tag of which the
place must carry; with neither, `board: <the target's board>`), `flash` (auto|always|
never), `baudrate`, `open_timeout_s`. A busy place is waited for (through a labgrid
reservation) or refused, per `defaults.on_busy` / `busy_timeout_s`.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from rig.config import Board
from rig.errors import (
    ConfigError,
    FirmwareMismatch,
    LinkError,
    RigError,
    TargetUnavailable,
)
from rig.firmware import FirmwareImage, FirmwareNotFound, check_hello, image_for
from rig.labgrid_client import (
    WATCHDOG_DONE,
    LabgridClient,
    coordinator_address,
    start_watchdog,
)
from rig.link.link import Link
from rig.link.transport import SerialTransport, Transport
from rig.protocol import MsgType
from rig.target_options import LabgridOptions
from rig.targets.base import FlashReport, Target, register_target

SERIAL_CLASS = "NetworkSerialPort"
GDB_SERVER_CLASS = "RigNetworkGdbServer"  # rig.labgrid_flash (not imported: labgrid ~0.5 s)
PROBE_CLASSES = ("NetworkUSBDebugger", "USBDebugger")
#: place tags the farm and a lab set: which board sits there, and whether it is emulated
TAG_BOARD = "board"
TAG_EMULATED = "emulated"


def serial_url(params: dict[str, Any]) -> str:
    """pyserial URL of a NetworkSerialPort's parameters."""
    host, port = params.get("host"), params.get("port")
    if not host or not port:
        raise TargetUnavailable(f"labgrid NetworkSerialPort without host/port: {params} "
                                "(the exporter starts ser2net only while the place is "
                                "acquired)")
    if params.get("protocol", "rfc2217") == "raw":
        return f"socket://{host}:{port}"
    # ser2net ports have no modem lines: do not let pyserial wait for their state
    return f"rfc2217://{host}:{port}?ign_set_control"


def _release(address: str, place: str, holder: str, watchdog: Any) -> None:
    """Release the place (finalizer: close(), garbage collection, interpreter exit)."""
    released = False
    try:
        with LabgridClient(address, connect_timeout_s=5.0) as lg:
            lg.release(place, only_from=holder)
        released = True
    except RigError:
        pass  # the watchdog tries again once its pipe closes
    finally:
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                if released:
                    watchdog.stdin.write(WATCHDOG_DONE)
                watchdog.stdin.close()


@register_target
class LabgridTarget(Target):
    kind = "labgrid"
    hardware = True

    options_type = LabgridOptions
    options: LabgridOptions

    def __init__(self, name: str, options: LabgridOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        super().__init__(name, options, board)
        o = self.options
        self.address = coordinator_address(o.coordinator)
        self.place_name: str | None = o.place
        tags = dict(o.tags or {})
        if not tags and self.place_name is None:
            if self.board is None:
                raise ConfigError(f"target {name!r}: a labgrid target needs place:, tags: "
                                  "or a board: (whose name is then the `board` tag)")
            tags = {TAG_BOARD: self.board.name}
        self.tags: dict[str, str] = tags
        self.flash_mode: str = o.flash
        self.baudrate = o.baudrate
        self.open_timeout_s = o.open_timeout_s
        self.on_busy = o.on_busy
        self.busy_timeout_s = o.busy_timeout_s
        self.counter_label = self.board.counter_label if self.board else "counter"
        self.acquired: str | None = None  # the place we hold
        self.place_tags: dict[str, str] = {}
        self.url: str | None = None
        self.holder: str | None = None  # host/user we acquired as
        self.events: list[str] = []
        self.flashed = False  # did the last start() flash the board?
        self.flash_log = ""  # the flasher's output (gdb)
        self._image_override: FirmwareImage | None = None  # flash(image)
        self._transport: Transport | None = None
        self._finalizer: weakref.finalize | None = None

    # -- Target API -----------------------------------------------------------------------

    def start(self) -> Transport:
        return self._start(flash=True)

    def _start(self, flash: bool) -> Transport:
        if self._transport is not None:
            raise RigError(f"{self.describe()}: already started; close() it first")
        self.events = []
        self.flashed, self.flash_log = False, ""
        try:
            with LabgridClient(self.address) as lg:
                if self.acquired is None:
                    self._acquire(lg)
                assert self.acquired is not None
                resources = lg.resources(self.acquired)
                classes = {cls for _, cls in resources}
                self.url = self._serial_url(resources)
                self._check_board()
                if (flash and classes & {GDB_SERVER_CLASS, *PROBE_CLASSES}
                        and self.flash_mode != "never"
                        and not (self.flash_mode == "auto" and self._running_matches())):
                    self._flash(lg, GDB_SERVER_CLASS in classes)
            self._transport = self._open()
        except BaseException:
            self.close()
            raise
        return self._transport

    def _serial_url(self, resources: dict[tuple[str, str], dict[str, Any]]) -> str:
        serial = [p for (_, cls), p in resources.items() if cls == SERIAL_CLASS]
        if not serial:
            raise TargetUnavailable(f"{self.describe()}: place {self.acquired} has no "
                                    f"{SERIAL_CLASS} (resources: "
                                    f"{', '.join(c for _, c in resources) or 'none'})")
        return serial_url(serial[0])

    def flash(self, image: FirmwareImage | None = None,
              progress: Callable[[float], None] | None = None, *,
              if_needed: bool = False) -> FlashReport:
        """`Flashable` (`rig flash`): acquire the place, flash `image` (None: the board's
        prebuilt one) through its GDB server, verify, reset, open the port. `if_needed`:
        only when HELLO does not already report the build. `progress` hears 1.0 at the end."""
        self.close()
        saved = self.flash_mode, self._image_override
        self.flash_mode = "auto" if if_needed else "always"
        self._image_override = image
        try:
            transport = self.start()
        finally:
            self.flash_mode, self._image_override = saved
        if progress is not None:
            progress(1.0)
        return FlashReport(self.flashed, tuple(self.flash_log.splitlines() or self.events),
                           transport)

    def reset(self) -> Transport:
        """Reopen the port, keeping the place and its image (the protocol's RESET resets
        the firmware)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        return self._start(flash=False)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._finalizer is not None:
            self._finalizer()  # releases the place and ends the watchdog
            self._finalizer = None
            self.events.append(f"released place {self.acquired}")
        self.acquired = None

    def unavailable_reason(self) -> str | None:
        """Cheap: is anything listening at the coordinator's address? (Whether a matching
        place is free is decided by start(): wait or refuse, per on_busy.)"""
        host, _, port = self.address.rpartition(":")
        try:
            with socket.create_connection((host or self.address, int(port or 20408)),
                                          timeout=0.5):
                return None
        except (OSError, ValueError) as exc:
            return f"no labgrid coordinator at {self.address} ({exc})"

    def expected_firmware(self) -> FirmwareImage | None:
        if self._image_override is not None:
            return self._image_override
        if self.board is None:
            return None
        try:
            return image_for(self.board.firmware, verify=False)
        except (FirmwareNotFound, FirmwareMismatch):
            return None

    def describe(self) -> str:
        where = self.acquired or (self.place_name or " ".join(
            f"{k}={v}" for k, v in self.tags.items()))
        return f"labgrid:{self.name} ({where} @ {self.address})"

    def diagnostics(self) -> str:
        state = "open" if self._transport is not None else "closed"
        lines = [f"{self.describe()}: port {self.url or '-'} {state}, holder {self.holder}"]
        lines += [f"  {e}" for e in self.events[-20:]]
        return "\n".join(lines)

    @property
    def emulated(self) -> bool:
        """The place says its board is an emulator (the loopback farm's QEMU places)."""
        return bool(self.place_tags.get(TAG_EMULATED))

    # -- internals ------------------------------------------------------------------------

    def _acquire(self, lg: LabgridClient) -> None:
        self.acquired = lg.acquire(self.place_name, self.tags, on_busy=self.on_busy,
                                   timeout_s=self.busy_timeout_s, waiting=self._waiting)
        self.holder = lg.name
        self.place_tags = dict(lg.places()[self.acquired].tags)
        watchdog = start_watchdog(self.address, self.acquired, self.holder)
        self._finalizer = weakref.finalize(self, _release, self.address, self.acquired,
                                           self.holder, watchdog)
        atexit.register(self._finalizer)
        self.events.append(f"acquired place {self.acquired} as {self.holder}")

    def _waiting(self, message: str) -> None:
        self.events.append(message)
        import sys

        print(f"tinyrig: {self.name}: {message}", file=sys.stderr, flush=True)

    def _check_board(self) -> None:
        board = self.place_tags.get(TAG_BOARD)
        if self.board is not None and board is not None and board != self.board.name:
            raise ConfigError(f"{self.describe()}: place {self.acquired} carries board="
                              f"{board}, but the target's board is {self.board.name}; fix "
                              f"the target's place:/tags: in the lab config")

    def _open(self) -> Transport:
        assert self.url is not None
        try:
            transport = SerialTransport(self.url, baudrate=self.baudrate,
                                        open_timeout=self.open_timeout_s)
        except LinkError as exc:
            raise TargetUnavailable(f"{self.describe()}: {exc}") from exc
        self.events.append(f"port {self.url} open")
        return transport

    def _running_matches(self) -> bool:
        image = self.expected_firmware()
        if image is None:
            return False
        transport = self._open()
        try:
            link = Link(transport, timeout=1.0, retries=1)
            link.request(MsgType.HELLO)
            assert link.hello is not None
            check_hello(link.hello, image, where=self.describe())
            return True
        except (RigError, AssertionError) as exc:
            self.events.append(f"running firmware needs flashing: {str(exc).splitlines()[0]}")
            return False
        finally:
            transport.close()

    def _flash(self, lg: LabgridClient, gdb_server: bool) -> None:
        """Through the place's RigNetworkGdbServer (tinyrig's driver), else labgrid's
        PyOCDDriver on its probe, where labgrid has one."""
        if self.board is None:
            raise ConfigError(f"{self.describe()}: place {self.acquired} can be flashed, "
                              "but the target names no board: (which image?)")
        image = self._image_override or image_for(self.board.firmware)
        assert self.acquired is not None
        if gdb_server:
            from rig.labgrid_flash import flash_place

            self.flash_log = flash_place(lg.session, lg.loop, self.acquired, image.path)
            self.events.append(f"flashed {image.path.name} through the place's GDB server "
                               "(RigGdbFlashDriver)")
        else:
            self._flash_pyocd_driver(lg, image)
        self.flashed = True

    def _flash_pyocd_driver(self, lg: LabgridClient, image: FirmwareImage) -> None:
        try:
            from labgrid.driver import PyOCDDriver
        except ImportError as exc:
            import labgrid

            raise TargetUnavailable(
                f"{self.describe()}: place {self.acquired} has a debug probe but no "
                f"{GDB_SERVER_CLASS}, and labgrid {getattr(labgrid, '__version__', '?')} "
                "has no PyOCDDriver; export the probe as RigPyOCDGdbServer (run the "
                "exporter as `python -m rig.labgrid_exporter`), or set flash: never for "
                "this target and flash the board on its host (`rig flash`)") from exc
        if self.board is None or not self.board.pyocd_target:
            raise ConfigError(f"{self.describe()}: place {self.acquired} has a debug probe "
                              "but the target's board has no pyocd_target")
        from rig.labgrid_flash import place_target

        assert self.acquired is not None
        with place_target(lg.session, lg.loop, self.acquired) as target:
            driver = PyOCDDriver(target, name=None, target_name=self.board.pyocd_target)
            target.activate(driver)
            driver.load(str(image.path))
        self.events.append(f"flashed {image.path.name} with labgrid's PyOCDDriver")
