"""A small synchronous face on labgrid's own client (`labgrid.remote.client.ClientSession`,
gRPC to a `labgrid-coordinator`): find places by name or tags, acquire one (at once, or by
waiting through a labgrid reservation), read its resources, release it — and make sure a
place is released even when this process dies.

Identity. The coordinator records who acquired a place as `host/user`. The rig acquires
as `host/<user>-rig<pid>` (`<user>` = `$LG_USERNAME`, else the login name): a busy place
then names the very process that holds it (and, on the same host, its command line),
and a crashed process's acquisition can be told from a person's `labgrid-client acquire`.

Release after a crash. `release()` runs on close; targets also release at interpreter
exit and on Ctrl-C (the exception unwinds through close). For SIGKILL, OOM or a power
cut of the test process, `acquire()` starts a watchdog process (`python -m
rig.labgrid_client --watch ...`, in its own session so Ctrl-C or a process-group kill
does not take it along): it waits for its parent to go away and then releases the place
*if it is still acquired by that identity* (labgrid's `release-from`). Recovery by hand,
if even that is gone (the host died): `labgrid-client -p PLACE release --kick`, or
`labgrid-client -p PLACE release-from HOST/USER-rigPID`.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio costs ~0.1 s to import: only when a farm is used
    import asyncio

from rig.errors import BoardBusy, TargetUnavailable

ENV_COORDINATOR = "LG_COORDINATOR"  # labgrid's own variable
DEFAULT_COORDINATOR = "127.0.0.1:20408"
APT_LABGRID = "python3 -m pip install labgrid"


def coordinator_address(given: str | None = None) -> str:
    return given or os.environ.get(ENV_COORDINATOR) or DEFAULT_COORDINATOR


def rig_identity(pid: int | None = None) -> tuple[str, str]:
    """(host, user) this process acquires places as."""
    user = os.environ.get("LG_USERNAME") or getpass.getuser()
    host = os.environ.get("LG_HOSTNAME") or socket.gethostname()
    return host, f"{user}-rig{pid if pid is not None else os.getpid()}"


def describe_holder(acquired: str) -> str:
    """`host/user` as the coordinator records it, with the process behind it when it is a
    rig on this host (pid and command line)."""
    host, _, user = acquired.partition("/")
    pid_txt = user.rpartition("-rig")[2]
    if "-rig" in user and pid_txt.isdigit() and host == rig_identity()[0]:
        try:
            raw = Path(f"/proc/{pid_txt}/cmdline").read_bytes()
            cmd = " ".join(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
            return f"{acquired} (pid {pid_txt} on this host: {cmd})"
        except OSError:
            return f"{acquired} (pid {pid_txt} on this host, no longer running)"
    return acquired


@dataclass(frozen=True)
class PlaceInfo:
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    acquired: str | None = None  # host/user
    reservation: str | None = None  # token of the reservation it is allocated to
    comment: str = ""

    def matches(self, name: str | None, tags: Mapping[str, str]) -> bool:
        if name is not None and name != self.name:
            return False
        return all(self.tags.get(k) == v for k, v in tags.items())

    @property
    def state(self) -> str:
        if self.acquired:
            return f"acquired by {describe_holder(self.acquired)}"
        if self.reservation:
            return f"reserved ({self.reservation})"
        return "available"


def _labgrid() -> tuple[Any, Any, Any]:
    """(client module, coordinator pb2, proxymanager), imported on first use (~0.5 s)."""
    try:
        from labgrid.remote import client
        from labgrid.remote.generated import (
            labgrid_coordinator_pb2,
        )
        from labgrid.util.proxy import proxymanager
    except ImportError as exc:
        raise TargetUnavailable(f"labgrid is not installed ({exc}); install it with "
                                f"`{APT_LABGRID}`") from exc
    return client, labgrid_coordinator_pb2, proxymanager


class LabgridClient:
    """One session with a coordinator, driven synchronously (own event loop). Close it
    (or use `with`); the places it acquired stay acquired until released."""

    def __init__(self, address: str | None = None, identity: tuple[str, str] | None = None,
                 connect_timeout_s: float = 10.0) -> None:
        client, self._pb2, proxymanager = _labgrid()
        self.address = coordinator_address(address)
        self.host, self.user = identity or rig_identity()
        host, user = self.host, self.user

        class _Session(client.ClientSession):  # type: ignore[name-defined]
            def gethostname(self) -> str:
                return host

            def getuser(self) -> str:
                return user

        import asyncio

        self._loop = asyncio.new_event_loop()
        grpc_address = proxymanager.get_grpc_address(self.address, default_port=20408)

        async def make() -> Any:  # grpc.aio binds the channel to the running loop
            return _Session(grpc_address, self._loop)

        self.session = self._loop.run_until_complete(make())
        try:
            self._run(self.session.start(), connect_timeout_s)
        except Exception as exc:
            self._shutdown()
            raise TargetUnavailable(f"labgrid coordinator {self.address}: cannot connect "
                                    f"({type(exc).__name__}: {exc}); is labgrid-coordinator "
                                    "running there?") from exc

    @property
    def name(self) -> str:
        return f"{self.host}/{self.user}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, coro: Any, timeout_s: float = 30.0) -> Any:
        import asyncio

        return self._loop.run_until_complete(asyncio.wait_for(coro, timeout_s))

    def _call(self, method: str, request: Any) -> Any:
        import grpc  # type: ignore[import-untyped]

        try:
            return self._run(getattr(self.session.stub, method)(request))
        except grpc.aio.AioRpcError as exc:
            raise _RpcError(exc.details() or str(exc.code())) from exc

    def sync(self) -> None:
        """Let the session take in every update the coordinator has sent so far."""
        self._run(self.session.sync_with_coordinator())

    def _shutdown(self) -> None:
        import asyncio

        loop = self._loop
        try:
            if getattr(self.session, "pump_task", None) is not None:
                loop.run_until_complete(self.session.stop())
            loop.run_until_complete(self.session.close())
            # let grpc's own tasks finish on this loop before it closes
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        except Exception:  # noqa: BLE001 - closing a broken session must not mask the cause
            pass
        finally:
            loop.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._shutdown()

    def __enter__(self) -> LabgridClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- places ---------------------------------------------------------------------------

    def places(self) -> dict[str, PlaceInfo]:
        self.sync()
        return {name: PlaceInfo(name, dict(p.tags), p.acquired or None, p.reservation or None,
                                p.comment or "")
                for name, p in sorted(self.session.places.items())}

    def matching(self, name: str | None, tags: Mapping[str, str]) -> list[PlaceInfo]:
        return [p for p in self.places().values() if p.matches(name, tags)]

    def resources(self, place: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The acquired place's resources: (name, class) -> parameters (host, port, …)."""
        self.sync()
        entries = self.session.get_target_resources(self.session.places[place])
        return {key: dict(entry.params) for key, entry in entries.items()}

    def acquire(self, name: str | None = None, tags: Mapping[str, str] | None = None, *,
                on_busy: str = "wait", timeout_s: float = 300.0,
                waiting: Callable[[str], None] | None = None) -> str:
        """Acquire a place by name and/or tags; return its name. A free matching place is
        taken at once. None free: `error` raises BoardBusy naming the holders; `wait`
        queues a labgrid reservation for the same filter and acquires the place the
        coordinator allocates to it (BoardBusy after `timeout_s`)."""
        want = dict(tags or {})
        what = _selector(name, want)
        candidates = self.matching(name, want)
        if not candidates:
            known = ", ".join(f"{p.name} ({_tags(p.tags)})" for p in self.places().values())
            raise TargetUnavailable(f"labgrid coordinator {self.address}: no place matches "
                                    f"{what}; places: {known or 'none'}")
        for place in candidates:
            if place.acquired is None and place.reservation is None:
                try:
                    self._call("AcquirePlace",
                               self._pb2.AcquirePlaceRequest(placename=place.name))
                except _RpcError:
                    continue  # taken between our look and our request: try the next
                self.sync()
                return place.name
        if on_busy == "error":
            raise BoardBusy(f"labgrid: every place matching {what} is in use: "
                            + "; ".join(f"{p.name} {p.state}" for p in candidates)
                            + " (on_busy: error — set on_busy: wait to queue for it)")
        return self._acquire_by_reservation(name, want, candidates, timeout_s, waiting)

    def _acquire_by_reservation(self, name: str | None, tags: dict[str, str],
                                candidates: list[PlaceInfo], timeout_s: float,
                                waiting: Callable[[str], None] | None) -> str:
        filt = dict(tags)
        if name is not None:
            filt["name"] = name
        pb2 = self._pb2
        reply = self._call("CreateReservation", pb2.CreateReservationRequest(
            filters={"main": pb2.Reservation.Filter(filter=filt)}, prio=0.0))
        token = reply.reservation.token
        if waiting is not None:
            waiting(f"waiting for a labgrid place matching {_selector(name, tags)} "
                    f"(reservation {token}); in use: "
                    + "; ".join(f"{p.name} {p.state}" for p in candidates))
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                res = self._call("PollReservation",
                                 pb2.PollReservationRequest(token=token)).reservation
                allocated = list(res.allocations.values())  # filter group -> place name
                if allocated:
                    self._call("AcquirePlace", pb2.AcquirePlaceRequest(placename=allocated[0]))
                    self.sync()
                    return str(allocated[0])
                if time.monotonic() >= deadline:
                    raise BoardBusy(
                        f"labgrid: no place matching {_selector(name, tags)} became free "
                        f"within {timeout_s:g} s; in use: "
                        + "; ".join(f"{p.name} {p.state}" for p in self.matching(name, tags)))
                time.sleep(0.1)
        finally:
            # Acquired: the reservation has done its job (releasing never waits on it).
            self.cancel_reservation(token)

    def cancel_reservation(self, token: str) -> None:
        with contextlib.suppress(_RpcError):  # already gone (expired)
            self._call("CancelReservation", self._pb2.CancelReservationRequest(token=token))

    def release(self, place: str, only_from: str | None = None) -> bool:
        """Release a place. With `only_from` (host/user) only if that identity still holds
        it (labgrid's release-from). True if it was released by this call."""
        info = self.places().get(place)
        if info is None or info.acquired is None:
            return False
        if only_from is not None and info.acquired != only_from:
            return False
        request = self._pb2.ReleasePlaceRequest(placename=place)
        if only_from is not None:
            request = self._pb2.ReleasePlaceRequest(placename=place, fromuser=only_from)
        self._call("ReleasePlace", request)
        self.sync()
        return True

    # -- setting up places (the loopback farm, a lab's bring-up script) ---------------------

    def add_place(self, name: str, matches: list[str], tags: Mapping[str, str]) -> None:
        pb2 = self._pb2
        self._call("AddPlace", pb2.AddPlaceRequest(name=name))
        for pattern in matches:
            self._call("AddPlaceMatch", pb2.AddPlaceMatchRequest(placename=name,
                                                                 pattern=pattern))
        if tags:
            self._call("SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name,
                                                               tags=dict(tags)))
        self.sync()

    def resource_paths(self) -> list[str]:
        """exporter/group/class/name of every resource the exporters announced."""
        self.sync()
        return sorted(f"{exp}/{grp}/{res.cls}/{rname}"
                      for exp, groups in self.session.resources.items()
                      for grp, group in groups.items() for rname, res in group.items())


class _RpcError(Exception):
    pass


def _selector(name: str | None, tags: Mapping[str, str]) -> str:
    parts = ([f"name={name}"] if name else []) + [f"{k}={v}" for k, v in tags.items()]
    return " ".join(parts) or "(any place)"


def _tags(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "no tags"


# --- watchdog: release after the acquiring process died ----------------------------------


WATCHDOG_DONE = b"released\n"


def start_watchdog(address: str, place: str, holder: str) -> subprocess.Popen[bytes]:
    """A process that releases `place` from `holder` once this process is gone (its stdin,
    our pipe, reaches EOF). After releasing normally, write WATCHDOG_DONE and close its
    stdin: it then exits without contacting the coordinator."""
    return subprocess.Popen(
        [sys.executable, "-m", "rig.labgrid_client", "--watch", address, place, holder],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)


def _watch(address: str, place: str, holder: str) -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if sys.stdin.buffer.read() == WATCHDOG_DONE:  # read() returns at EOF
        return 0  # the parent released the place itself
    for _ in range(3):  # the parent died holding it
        try:
            with LabgridClient(address, identity=("watchdog", f"pid{os.getpid()}")) as lg:
                lg.release(place, only_from=holder)
            return 0
        except Exception:  # noqa: BLE001 - coordinator restarting: retry a little
            time.sleep(1.0)
    return 1


# --- rig list ------------------------------------------------------------------------------


def list_places(address: str | None = None) -> list[PlaceInfo]:
    """Every place of the coordinator with its state (for `rig list`)."""
    with LabgridClient(address, connect_timeout_s=5.0) as lg:
        return list(lg.places().values())


def configured_coordinators(lab: Any) -> list[str]:
    """Coordinator addresses a lab config uses (its enabled labgrid targets), plus
    $LG_COORDINATOR when set."""
    found = [coordinator_address(getattr(t.options, "coordinator", None))
             for t in lab.enabled_targets("labgrid")]
    if os.environ.get(ENV_COORDINATOR):
        found.append(os.environ[ENV_COORDINATOR])
    return list(dict.fromkeys(found))


def places_report(lab: Any) -> str | None:
    """`rig list`'s labgrid section: every place of every configured coordinator with its
    state (available / acquired by whom / reserved), or why a coordinator cannot be
    reached. None when the lab uses no coordinator."""
    addresses = configured_coordinators(lab)
    if not addresses:
        return None
    parts = []
    for address in addresses:
        try:
            parts.append(format_places(list_places(address), address))
        except TargetUnavailable as exc:
            parts.append(f"labgrid places at {address}: unreachable ({exc})")
    return "\n".join(parts)


def format_places(places: list[PlaceInfo], address: str) -> str:
    lines = [f"labgrid places at {address}:"]
    if not places:
        lines.append("  (none)")
    for p in places:
        lines.append(f"  {p.name:24s} {_tags(p.tags):40s} {p.state}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--watch":
        sys.exit(_watch(sys.argv[2], sys.argv[3], sys.argv[4]))
    print("usage: python -m rig.labgrid_client --watch ADDRESS PLACE HOST/USER",
          file=sys.stderr)
    sys.exit(2)
