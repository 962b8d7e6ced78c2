"""Cross-process locks on physical resources (a debug probe, a serial port), so two
processes on one host — two pytest-xdist workers, `rig run` next to pytest — never open
the same board.

One lock file per resource under the lock directory, locked with `flock(2)`: the kernel
drops the lock when the holder closes it *or dies* (crash, SIGKILL, Ctrl-C), so a lock is
never stale. The holder writes who it is (pid, host, command line, since when) into the
file, and a process that finds the resource held names that holder — in the error, or in
the line it logs while it waits.

What is locked: `pyocd` targets lock their probe's unique id and the serial port they
open, `serial` targets their port (a device path, or the host:port of a network URL).
QEMU and native targets lock nothing: every start owns a private emulator or process and
fresh loopback ports. A labgrid place is locked by labgrid itself (acquire).

Lock directory: `$TINYRIG_LOCK_DIR`, else `$XDG_RUNTIME_DIR/tinyrig-locks`, else
`/tmp/tinyrig-locks-<uid>`. flock only coordinates processes that see the same file:
one host (labgrid coordinates across hosts).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from rig.errors import BoardBusy

ENV_LOCK_DIR = "TINYRIG_LOCK_DIR"


class OnBusy(StrEnum):
    """What a target does when its board is held by another process."""

    WAIT = "wait"  # wait (up to busy_timeout_s), logging who holds it
    ERROR = "error"  # fail at once with BoardBusy naming the holder


DEFAULT_ON_BUSY = OnBusy.WAIT
DEFAULT_BUSY_TIMEOUT_S = 300.0


def lock_dir() -> Path:
    given = os.environ.get(ENV_LOCK_DIR)
    if given:
        path = Path(given)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "tinyrig-locks"
    else:
        path = Path(f"/tmp/tinyrig-locks-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def resource_file(resource: str, directory: Path | None = None) -> Path:
    """The lock file of a resource name such as `probe:0671FF...` or `port:/dev/ttyACM0`:
    readable, and unique (a short hash of the full name)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", resource).strip("_")[:80]
    digest = hashlib.sha256(resource.encode()).hexdigest()[:10]
    return (directory or lock_dir()) / f"{safe}-{digest}.lock"


def port_resource(url: str) -> str:
    """The resource name of a serial port: the real path of a device (symlinks such as
    /dev/serial/by-id/... and /dev/ttyACM0 are one board), else the URL without options."""
    if "://" not in url:
        return "port:" + os.path.realpath(url)
    return "port:" + url.split("?", 1)[0].lower()


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder wrote it."""

    pid: int
    host: str
    cmdline: str
    since: float
    owner: str = ""  # e.g. the target's describe()

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        who = f" ({self.owner})" if self.owner else ""
        return f"pid {self.pid} on {self.host} since {when}{who}: {self.cmdline}"


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in a lock file (None: nobody recorded yet, or unreadable). The
    record may be stale if nobody holds the lock now; `is_held` tells."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
        return Holder(int(data["pid"]), str(data["host"]), str(data["cmdline"]),
                      float(data["since"]), str(data.get("owner", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_held(path: Path) -> bool:
    """True if some process holds the lock on `path` right now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _cmdline(pid: int | str = "self") -> str:
    """The command line of a process. An xdist worker's own is execnet's bootstrap, so a
    worker names its worker id and the command line of the pytest that started it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER") if pid == "self" else None
    if worker:
        return f"pytest-xdist worker {worker} of pid {os.getppid()}: {_cmdline(os.getppid())}"
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return " ".join(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
    except OSError:
        return " ".join([sys.executable, *sys.argv]) if pid == "self" else f"pid {pid}"


class ResourceLock:
    """An exclusive lock on one resource, held from `acquire` to `release` (or process
    death). Two ResourceLocks on one resource conflict also inside one process (each has
    its own open file): within a process that is reported at once, not waited for."""

    _held_here: ClassVar[dict[Path, str]] = {}  # path -> owner, this process

    def __init__(self, resource: str, owner: str = "", directory: Path | None = None) -> None:
        self.resource = resource
        self.owner = owner
        self.path = resource_file(resource, directory)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, on_busy: OnBusy | str = DEFAULT_ON_BUSY,
                timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
                waiting: Callable[[str], None] | None = None) -> None:
        """Take the lock. Held elsewhere: `error` raises BoardBusy naming the holder,
        `wait` polls until it is free (calling `waiting(message)` once) and raises
        BoardBusy after `timeout_s`."""
        if self._fd is not None:
            return
        policy = OnBusy(on_busy)
        if self.path in self._held_here:
            raise BoardBusy(f"{self.resource} is already held by this process "
                            f"({self._held_here[self.path]})")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        deadline = time.monotonic() + timeout_s
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                holder = self._holder_text()
                if policy is OnBusy.ERROR:
                    raise BoardBusy(f"{self.resource} is in use by {holder} (lock "
                                    f"{self.path}; on_busy: error — set on_busy: wait to "
                                    "queue for it)")
                if time.monotonic() >= deadline:
                    raise BoardBusy(f"{self.resource} still in use after waiting "
                                    f"{timeout_s:g} s, by {holder} (lock {self.path})")
                if not told and waiting is not None:
                    waiting(f"waiting for {self.resource}, in use by {holder}")
                    told = True
                time.sleep(0.05)
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "cmdline": _cmdline(),
                  "since": time.time(), "owner": self.owner, "resource": self.resource}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        self._held_here[self.path] = self.owner or self.resource

    def release(self) -> None:
        """Give the lock back (the file stays: deleting it would race with a waiter)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._held_here.pop(self.path, None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor drops the flock

    def _holder_text(self) -> str:
        for _ in range(5):  # the holder writes its record right after locking
            holder = read_holder(self.path)
            if holder is not None:
                return holder.describe()
            time.sleep(0.01)
        return "another process (it recorded no details)"

    def __enter__(self) -> ResourceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


#: where a target waiting for a held board says so (the pytest plugin routes it past
#: pytest's output capture, so a waiting test does not look hung)
say: Callable[[str], None] = _to_stderr


class TargetLocks:
    """The locks one target holds, taken under the lab's policy (`defaults.on_busy`,
    `defaults.busy_timeout_s`)."""

    def __init__(self, owner: str, on_busy: OnBusy | str = DEFAULT_ON_BUSY,
                 timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
                 waiting: Callable[[str], None] | None = None) -> None:
        self.owner = owner
        self.on_busy = OnBusy(on_busy)
        self.timeout_s = timeout_s
        self.waiting = waiting or (lambda msg: say(f"tinyrig: {owner}: {msg}"))
        self._locks: dict[str, ResourceLock] = {}

    @classmethod
    def for_target(cls, owner: str, defaults: object) -> TargetLocks:
        """Policy from a `rig.config.Defaults` (or anything with those attributes)."""
        return cls(owner, getattr(defaults, "on_busy", DEFAULT_ON_BUSY),
                   float(getattr(defaults, "busy_timeout_s", DEFAULT_BUSY_TIMEOUT_S)))

    def take(self, resource: str) -> None:
        """Hold `resource` (no-op if this target already holds it)."""
        if resource in self._locks:
            return
        lock = ResourceLock(resource, owner=self.owner)
        lock.acquire(self.on_busy, self.timeout_s, self.waiting)
        self._locks[resource] = lock

    def release_all(self) -> None:
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()

    @property
    def resources(self) -> list[str]:
        return list(self._locks)


def held_resources(directory: Path | None = None) -> list[tuple[str, Holder | None]]:
    """Resources locked right now on this host, with their holders (for `rig list`)."""
    out = []
    base = directory or lock_dir()
    for path in sorted(base.glob("*.lock")):
        if is_held(path):
            holder = read_holder(path)
            try:
                resource = json.loads(path.read_text(encoding="utf-8"))["resource"]
            except (OSError, ValueError, KeyError, TypeError):
                resource = path.stem
            out.append((str(resource), holder))
    return out


__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "DEFAULT_ON_BUSY", "BoardBusy", "Holder", "OnBusy",
           "ResourceLock", "TargetLocks", "held_resources", "is_held", "lock_dir",
           "port_resource", "read_holder", "resource_file"]
