"""The remote path through a real labgrid farm on loopback (rig/farm.py): labgrid's own
coordinator and two exporters (`python -m rig.labgrid_exporter`) exporting QEMU boards
(pty → ser2net → RFC 2217, gdbstub → RigNetworkGdbServer) as places. The boards start
blank (or running a stale build): every place is acquired, flashed through its exporter's
GDB server, HELLO checked against the manifest, a short lockstep training compared with
the golden model, released. Then contention (wait / refuse with the holder named),
selection by tags, and a killed client whose place is released."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import cli
from rig.config import LabConfig, load_config
from rig.connection import connect
from rig.errors import BoardBusy, FirmwareMismatch, TargetUnavailable
from rig.farm import LoopbackFarm
from rig.firmware import image_for
from rig.fit import fit_spec
from rig.labgrid_client import format_places, list_places
from rig.session import Inspect, RunSpec, TrainingSession
from rig.targets import build_target, make_target
from rig.targets.labgrid import LabgridTarget

pytest.importorskip("labgrid")
pytestmark = pytest.mark.farm

ROOT = Path(__file__).resolve().parents[1]
#: the module's farm: four blank QEMU boards, one running a stale build, and one place that
#: announces only a debug probe (labgrid's own flashing path, absent in labgrid 26.0.1)
LAYOUT = {"exp-a": ["mps2-an386", "netduinoplus2", "microbit"],
          "exp-b": ["microbit", "mps2-an386"]}
STALE = "exp-b-mps2-an386"
PROBE_ONLY = "exp-a-microbit"
PLACES = ["exp-a-mps2-an386", "exp-a-netduinoplus2", "exp-b-microbit", STALE]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackFarm]:
    """Coordinator + 2 exporters + 5 QEMU places on 127.0.0.1, for this module."""
    with LoopbackFarm(tmp_path_factory.mktemp("farm"), LAYOUT, stale_places=[STALE],
                      probe_places=[PROBE_ONLY]) as f:
        yield f


@pytest.fixture(scope="module")
def farm_lab(farm: LoopbackFarm) -> LabConfig:
    return load_config(farm.lab_config_path)


def _target(lab: LabConfig, name: str, **defaults: object) -> LabgridTarget:
    tc = lab.target(name)
    target = make_target(tc.name, tc.kind, dataclasses.replace(tc.options, **defaults),
                         lab.board(tc.board))
    assert isinstance(target, LabgridTarget)
    return target


def _states(farm: LoopbackFarm) -> dict[str, str]:
    return {p.name: p.state for p in list_places(farm.address)}


def _wait_state(farm: LoopbackFarm, place: str, prefix: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        state = _states(farm)[place]
        if state.startswith(prefix) or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def test_farm_exports_every_board_as_a_place(farm: LoopbackFarm) -> None:
    places = list_places(farm.address)
    assert [p.name for p in places] == sorted(p.name for p in farm.places)
    assert len({p.exporter for p in farm.places}) == 2 and len(places) == 5
    assert all(p.state == "available" for p in places)
    assert {p.tags["board"] for p in places} == {"mps2-an386", "netduinoplus2", "microbit"}
    text = format_places(places, farm.address)
    assert "exp-b-microbit" in text and "board=microbit, emulated=qemu" in text


def test_stale_place_is_flashed_through_the_exporter(farm: LoopbackFarm,
                                                      farm_lab: LabConfig) -> None:
    """The place runs a build the manifest does not know: with flash: never the rig
    refuses it (HELLO's build id); flash: auto sees that and flashes through the place's
    GDB server, after which HELLO reports the manifest's build."""
    expected = image_for(farm_lab.board("mps2-an386").firmware).source_hash
    never = _target(farm_lab, STALE, flash="never")
    with pytest.raises(FirmwareMismatch, match="firmware build differs") as err:
        connect(never)
    assert f"build {expected[:12]}" in str(err.value)  # expected, not running
    assert not never.flashed and _states(farm)[STALE] == "available"
    auto = _target(farm_lab, STALE, flash="auto")
    conn = connect(auto)
    try:
        assert auto.flashed and conn.hello.build_hash == expected
        assert any("running firmware needs flashing" in e for e in auto.events)
        assert "RigGdbFlashDriver" in " ".join(auto.events)
        assert "Loading section" in auto.flash_log and "MIS-MATCHED" not in auto.flash_log
    finally:
        conn.close()
    again = _target(farm_lab, STALE, flash="auto")  # now it runs the build: not flashed
    conn = connect(again)
    try:
        assert not again.flashed and conn.hello.build_hash == expected
    finally:
        conn.close()


LABGRID_LOAD = textwrap.dedent("""
    import sys
    from labgrid import Environment
    target = Environment(sys.argv[1]).get_target("main")
    print(target.get_driver("BootstrapProtocol").load(sys.argv[2]))
""")


def test_labgrid_alone_flashes_a_place_with_tinyrigs_driver(
        farm: LoopbackFarm, farm_lab: LabConfig, tmp_path: Path) -> None:
    """labgrid's own tools, no rig target: `labgrid-client acquire`, then a labgrid
    environment that imports rig.labgrid_flash loads the image with RigGdbFlashDriver
    (found as labgrid's BootstrapProtocol). The blank board then answers the rig (flash:
    never) with the manifest's build."""
    place = "exp-a-netduinoplus2"
    image = image_for(farm_lab.board("netduinoplus2").firmware)
    env_file = tmp_path / "env.yaml"
    env_file.write_text(textwrap.dedent(f"""
        targets:
          main:
            resources:
              RemotePlace: {{name: {place}}}
            drivers:
              RigGdbFlashDriver: {{}}
        options:
          coordinator_address: {farm.address}
        imports: [rig.labgrid_flash]
    """))
    env = {**os.environ, "LG_COORDINATOR": farm.address, "LG_USERNAME": "lab-user",
           "LG_HOSTNAME": "lab-host",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def client(*args: str) -> None:
        subprocess.run(["labgrid-client", "-p", place, *args], env=env, check=True,
                       capture_output=True, timeout=60)

    client("acquire")
    try:
        load = subprocess.run([sys.executable, "-c", LABGRID_LOAD, str(env_file),
                               str(image.path)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert load.returncode == 0, load.stderr[-3000:]
        assert "Loading section" in load.stdout and "MIS-MATCHED" not in load.stdout
    finally:
        client("release")
    conn = connect(_target(farm_lab, place, flash="never"))
    try:
        assert conn.hello.build_hash == image.source_hash
    finally:
        conn.close()


@pytest.mark.parametrize("place", PLACES)
def test_hil_smoke_through_labgrid(farm: LoopbackFarm, farm_lab: LabConfig,
                                   place: str) -> None:
    """Flashed through the exporter's GDB server (the boards start blank), HELLO (checked
    against the manifest) and one short lockstep training on the place, compared step by
    step with the golden model; the place is released afterwards."""
    target = build_target(farm_lab, place)
    assert isinstance(target, LabgridTarget)
    conn = connect(target)
    try:
        assert target.acquired == place and target.emulated
        assert target.flashed  # flash: always (the farm's config); the boards start blank
        assert target.url is not None and target.url.startswith("rfc2217://127.0.0.1:")
        assert _states(farm)[place].startswith(f"acquired by {target.holder}")
        assert target.board is not None and conn.hello.board == target.board.name
        lab_spec = RunSpec(**{f.name: getattr(farm_lab.training, f.name)
                              for f in dataclasses.fields(farm_lab.training)
                              if f.name in {g.name for g in dataclasses.fields(RunSpec)}})
        spec, _ = fit_spec(lab_spec, conn.hello, target.board.training,
                           {"dims": (64, 8, 10), "train_samples": 16, "test_samples": 16,
                            "epochs": 1, "batch": 8})
        session = TrainingSession(conn.device, spec,
                                  inspect=Inspect(params_every=1, resync=True))
        session.prepare()
        report = session.run()
        assert session.lockstep and report.ok, report.failures
        assert len(report.steps) == -(-16 // spec.batch)
        assert report.steps[-1].device.loss != report.steps[0].device.loss
    finally:
        conn.close()
    assert _states(farm)[place] == "available"


def test_rig_flash_flashes_a_place(farm: LoopbackFarm, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`rig flash` on a labgrid target: acquire, flash through the exporter, HELLO, release."""
    log = tmp_path / "flash.log"
    capsys.readouterr()
    assert cli.main(["--config", str(farm.lab_config_path), "flash", "--target",
                     "exp-b-microbit", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "ok: microbit runs build" in out and "not flashed" not in out
    assert "Loading section" in log.read_text() and "matched" in log.read_text()
    assert _states(farm)["exp-b-microbit"] == "available"


def test_tags_select_any_matching_place(farm: LoopbackFarm, farm_lab: LabConfig) -> None:
    first = _target(farm_lab, "farm-mps2-an386", flash="never")
    second = _target(farm_lab, "farm-mps2-an386", on_busy="error", flash="never")
    third = _target(farm_lab, "farm-mps2-an386", on_busy="error", flash="never")
    first.start()
    try:
        second.start()
        try:
            assert {first.acquired, second.acquired} == {"exp-a-mps2-an386",
                                                         "exp-b-mps2-an386"}
            with pytest.raises(BoardBusy, match="every place matching board=mps2-an386 is "
                                                "in use") as err:
                third.start()
            assert str(os.getpid()) in str(err.value)
        finally:
            second.close()
    finally:
        first.close()
    assert _states(farm)["exp-a-mps2-an386"] == "available"


# holds a place (not flashing it: contention is what these tests are about)
HOLDER = textwrap.dedent("""
    import dataclasses, sys, time
    from rig.config import load_config
    from rig.targets import make_target
    lab = load_config(sys.argv[1])
    tc = lab.target(sys.argv[2])
    t = make_target(tc.name, tc.kind, dataclasses.replace(tc.options, flash="never"),
                    lab.board(tc.board))
    t.start()
    print("acquired", t.acquired, flush=True)
    time.sleep(float(sys.argv[3]))
    t.close()
    print("released", time.monotonic(), flush=True)
    time.sleep(60 if sys.argv[4] == "linger" else 0)
""")


def _holder(farm: LoopbackFarm, place: str, hold_s: float, linger: bool = False
            ) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(farm.lab_config_path), place,
                             str(hold_s), "linger" if linger else "-"],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:2] == ["acquired", place], line
    return proc


def test_second_client_is_refused_naming_the_holder(
        farm: LoopbackFarm, farm_lab: LabConfig, capsys: pytest.CaptureFixture[str]) -> None:
    holder = _holder(farm, "exp-a-netduinoplus2", hold_s=30)
    try:
        target = _target(farm_lab, "exp-a-netduinoplus2", on_busy="error")
        with pytest.raises(BoardBusy) as err:
            target.start()
        msg = str(err.value)
        assert f"-rig{holder.pid} (pid {holder.pid} on this host:" in msg
        assert "on_busy: error" in msg and target.acquired is None
        # rig list names the holder too
        capsys.readouterr()
        assert cli.main(["--config", str(farm.lab_config_path), "list"]) == 0
        out = capsys.readouterr().out
        assert f"labgrid places at {farm.address}:" in out
        places = out[out.index(f"labgrid places at {farm.address}:"):].splitlines()
        line = next(ln for ln in places if ln.strip().startswith("exp-a-netduinoplus2 "))
        assert "acquired by" in line and f"-rig{holder.pid}" in line
        assert next(ln for ln in places if ln.strip().startswith("exp-b-microbit ")
                    ).endswith("available")
    finally:
        holder.terminate()
        holder.wait(10)


def test_second_client_waits_for_the_place(farm: LoopbackFarm, farm_lab: LabConfig) -> None:
    holder = _holder(farm, "exp-a-netduinoplus2", hold_s=2.0)
    try:
        target = _target(farm_lab, "exp-a-netduinoplus2", on_busy="wait", busy_timeout_s=60,
                         flash="never")
        target.start()  # a labgrid reservation, allocated when the holder releases
        got = time.monotonic()
        try:
            assert holder.stdout is not None
            released = float(holder.stdout.readline().split()[1])
            assert released <= got, "both clients held the place at once"
            assert any("reservation" in e for e in target.events)
            assert target.acquired == "exp-a-netduinoplus2"
        finally:
            target.close()
    finally:
        holder.wait(30)


def test_killed_client_place_is_released(farm: LoopbackFarm) -> None:
    holder = _holder(farm, "exp-b-microbit", hold_s=60)
    state = _states(farm)["exp-b-microbit"]
    assert state.startswith("acquired by ") and f"rig{holder.pid}" in state
    holder.send_signal(signal.SIGKILL)  # no finalizer, no atexit: only the watchdog
    holder.wait(10)
    assert _wait_state(farm, "exp-b-microbit", "available", 15.0) == "available"


def test_unreachable_coordinator_is_unavailable(farm_lab: LabConfig) -> None:
    tc = farm_lab.target("exp-a-mps2-an386")
    target = make_target("x", "labgrid",
                         dataclasses.replace(tc.options, coordinator="127.0.0.1:9"),
                         farm_lab.board(tc.board))
    why = target.unavailable_reason()
    assert why is not None and "127.0.0.1:9" in why


def test_farm_processes_end_with_the_farm(tmp_path: Path) -> None:
    farm = LoopbackFarm(tmp_path / "f", layout={"exp-a": ["mps2-an386"],
                                                "exp-b": ["microbit"]})
    with farm:
        pids = [s.proc.pid for s in farm.services] + [
            p.qemu.pid for p in farm.places if p.qemu is not None]
        target = _target(load_config(farm.lab_config_path), "exp-b-microbit", flash="never")
        target.start()  # the exporter starts ser2net for the acquired place
        ser2net = subprocess.run(["pgrep", "-g", str(farm.services[-1].proc.pid), "ser2net"],
                                 capture_output=True, text=True).stdout.split()
        assert ser2net, "no ser2net for an acquired place"
        target.close()
    # ser2net is the exporter's child and is reparented when the exporter exits: give the
    # processes a bounded moment to finish exiting, then every one must be gone (or a zombie).
    left = [*pids, *(int(p) for p in ser2net)]
    deadline = time.monotonic() + 10.0
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if _alive(pid)]
        time.sleep(0.1)
    assert not left, f"processes outlived the farm: {[_cmdline(pid) for pid in left]}"


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:  # gone, or going between the two reads
        return False


def _cmdline(pid: int) -> str:
    try:
        return f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid}: (gone)"


def test_a_place_with_only_a_probe_needs_labgrids_driver(farm: LoopbackFarm,
                                                         farm_lab: LabConfig) -> None:
    """A place announcing a debug probe (only its description: no probe can exist on this
    machine) but no RigNetworkGdbServer goes to labgrid's PyOCDDriver, which labgrid
    26.0.1 does not ship — a clear error naming the way out, not a silent skip."""
    assert any(p.startswith("exp-a/microbit-") and "/NetworkUSBDebugger/" in p
               for p in farm_paths(farm))
    try:
        import labgrid.driver as lg_driver
        has_driver = hasattr(lg_driver, "PyOCDDriver")
    except ImportError:
        has_driver = False
    if has_driver:
        pytest.skip("this labgrid ships PyOCDDriver: flashing needs a real probe")
    target = _target(farm_lab, PROBE_ONLY, flash="always")
    with pytest.raises(TargetUnavailable, match="no PyOCDDriver.*RigPyOCDGdbServer"):
        target.start()
    assert _states(farm)[PROBE_ONLY] == "available"  # released after the error


def farm_paths(farm: LoopbackFarm) -> list[str]:
    from rig.labgrid_client import LabgridClient

    with LabgridClient(farm.address) as lg:
        return lg.resource_paths()
