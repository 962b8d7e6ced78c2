"""The target interface and its registry.

A target is one way of reaching a device running the training firmware: an emulator the
rig starts and owns (`qemu`), a port to a device that is already running (`serial`), the
firmware compiled for the host (`native`), a board flashed through a probe (`pyocd`).
Each knows how to start / reset / close and hands back a `Transport`. Targets register
themselves by kind with `@register_target`; nothing dispatches on kind with if/elif.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from rig.errors import ConfigError
from rig.faults import exception_name
from rig.link.transport import Transport
from rig.schema import build
from rig.target_options import TargetOptions

if TYPE_CHECKING:
    from rig.config import Board
    from rig.firmware import FirmwareImage
    from rig.protocol import HelloInfo


class Target(ABC):
    """One device reachable through one transport.

    Subclasses set `kind` and implement `start` and `close`. `start` must leave the
    firmware running and ready for HELLO; it is idempotent only through `close` first.
    """

    kind: ClassVar[str]
    #: what the device's counters mean on this target, e.g. "cycles (DWT)"
    counter_label: str = "counter"
    #: True for kinds that reach real silicon (what `defaults.target: board` selects)
    hardware: ClassVar[bool] = False
    #: replaces the firmware's own counter label (HELLO) in reports, for kinds whose
    #: counters are a model of the board's (twins)
    device_counter_label: ClassVar[str | None] = None

    #: the kind's typed options (rig.target_options)
    options_type: ClassVar[type[TargetOptions]] = TargetOptions

    def __init__(self, name: str, options: TargetOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        """`options`: the finished instance the lab config built, or a mapping of option
        values (tests, scripts) that is checked and completed here; a mapping may also
        carry `board` and `defaults` (the lab's `defaults:`, for `baudrate`)."""
        if not isinstance(options, TargetOptions):
            values = dict(options or {})
            board = values.pop("board", board)
            lab_defaults = values.pop("defaults", None)
            options = build(self.options_type, values, f"target {name!r}", lab_defaults)
        self.name = name
        self.options = options
        #: the lab's board this target reaches (None: a bare target built in a test)
        self.board: Board | None = board

    def observe_hello(self, hello: HelloInfo) -> None:
        """Called by `rig.connection.connect` with the device's HELLO. Kinds whose label
        is only the board's expectation (a device somebody else started may be an
        emulator) take the counter label from what the firmware reports."""
        del hello  # by default the kind's own label stands

    def max_link_baud(self) -> int:
        """The fastest link rate `connect` may switch to after HELLO (rig.link_rate), 0 to
        keep the rate the link started at: the kinds with `link_rate`/`link_max_baud` options follow
        them; the others (native: a pipe; twin: its UART model checks the boot rate)
        keep it."""
        if getattr(self.options, "link_rate", "fixed") != "negotiate":
            return 0
        return int(getattr(self.options, "link_max_baud", 0))

    @abstractmethod
    def start(self) -> Transport:
        """Boot (and flash, if this kind flashes) the device; return a connected transport."""

    def reset(self) -> Transport:
        """Bring the firmware back to its boot state. Default: close and start again."""
        self.close()
        return self.start()

    @abstractmethod
    def close(self) -> None:
        """Release everything (processes, ports). Safe to call twice and after a failure."""

    def unavailable_reason(self) -> str | None:
        """Why this target cannot be used right now (no port, no probe), or None. Cheap and
        side-effect free: `auto` target selection calls it on every candidate."""
        return None

    def expected_firmware(self) -> FirmwareImage | None:
        """The image the device should be running (for `rig.firmware.check_hello`), or None
        when this target cannot know."""
        return None

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"

    def diagnostics(self) -> str:
        """Text that helps explain a failure (emulator stderr, exit code). May be empty."""
        return ""

    def exit_status(self) -> str | None:
        """How the target's process ended, if it has (`describe_exit`: "killed by signal
        9"); None while it runs, or when this kind cannot tell (rig.resume restarts a
        target only when this says it died)."""
        return None

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class FlashReport:
    """What `Flashable.flash` did. The target is left started: `transport` reaches the
    freshly flashed (or already matching) firmware."""

    flashed: bool  # False: the device already ran the image (pyocd `if_needed`)
    log: tuple[str, ...]  # what was done, line by line (gdb's output, pyocd's steps)
    transport: Transport


@runtime_checkable
class Flashable(Protocol):
    """A target the rig can program (`rig flash`): QEMU through its gdbstub, a board through
    a pyocd probe."""

    def flash(self, image: FirmwareImage | None = None,
              progress: Callable[[float], None] | None = None, *,
              if_needed: bool = False) -> FlashReport:
        """Program `image` (None: the target's own prebuilt image), verify it, reset the
        core and start the target. `progress` gets the fraction done; `if_needed` skips
        programming when the device already runs the image (where the kind can tell)."""
        ...


def describe_exit(code: int | None, log_text: str = "", stopped_by_rig: bool = False) -> str:
    """Explain a firmware process's exit status (QEMU with semihosting, or native)."""
    if code is None:
        return "still running"
    if stopped_by_rig:  # QEMU exits 0 on SIGTERM; say who ended it
        return f"stopped by the rig (exit status {code})"
    if code == -6 or (code == 134 and "Lockup" in log_text):
        return ("QEMU lockup: the core faulted inside a fault handler (QEMU aborts, exit 134 /"
                " SIGABRT)")
    if 0x80 < code < 0x90:
        n = code - 0x80
        return (f"firmware fault, exception {n} ({exception_name(n)}): exit code "
                f"0x{code:02x} = 0x80 + exception number")
    if code == 0:
        return "exited normally (code 0)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"


_REGISTRY: dict[str, type[Target]] = {}


def register_target(cls: type[Target]) -> type[Target]:
    """Class decorator: make `cls` available under `cls.kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


def target_kinds() -> list[str]:
    return sorted(_REGISTRY)


def make_target(name: str, kind: str, options: TargetOptions | Mapping[str, Any] | None = None,
                board: Board | None = None) -> Target:
    try:
        cls = _REGISTRY[kind]
    except KeyError:
        raise ConfigError(f"target {name!r}: unknown kind {kind!r}; known kinds: "
                          f"{', '.join(target_kinds())}") from None
    return cls(name, options, board)


# --- processes a target owns (QEMU, the native firmware) ---------------------------------

_log_dir: Path | None = None


def default_log_dir() -> Path:
    """A per-process temporary directory for child logs, removed at interpreter exit (set
    a target's `log_dir` option to keep them)."""
    global _log_dir
    if _log_dir is None:
        _log_dir = Path(tempfile.mkdtemp(prefix="tinyrig-logs-"))
        atexit.register(shutil.rmtree, _log_dir, ignore_errors=True)
    return _log_dir


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: have the child get SIGTERM if the rig dies without cleaning up (SIGKILL, CI
    timeout). Only from the main thread: the signal fires when the forking *thread* ends."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not \
            threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    return set_pdeathsig


def _stop_process(proc: subprocess.Popen[bytes], log: Any, grace_s: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdin, proc.stdout, log):
        try:
            if f is not None:
                f.close()
        except OSError:
            pass


class ChildProcess:
    """A child process owned by a target. stderr (and stdout unless `pipes`) go to a log
    file. It is terminated, then killed, by `stop()`, when garbage-collected and at
    interpreter exit, so no emulator outlives the rig."""

    def __init__(self, cmd: Sequence[str], log_path: Path, pipes: bool = False,
                 grace_s: float = 2.0) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        self.stopped_by_rig = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "wb")  # noqa: SIM115 - closed by the finalizer
        try:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log, stderr=log,
                preexec_fn=_parent_death_signal(), close_fds=True)
        except OSError:
            log.close()
            raise
        self._finalizer = weakref.finalize(self, _stop_process, self.proc, log, grace_s)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> int | None:
        """Terminate (then kill) if still running; return the exit status."""
        if self.proc.poll() is None:
            self.stopped_by_rig = True
        self._finalizer()
        return self.proc.returncode

    def log_text(self, max_bytes: int = 64 * 1024) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().rstrip().splitlines()[-lines:])

    def describe_exit(self) -> str:
        return describe_exit(self.proc.poll(), self.log_text(), self.stopped_by_rig)
