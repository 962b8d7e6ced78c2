"""Real training through the fault-injecting transport, compared bit for bit with a clean
run: the native firmware (a host process on pipes) and QEMU mps2-an386 (UART on a socket).

Each run trains the same small job on a fresh target and reads every parameter back at the
end; with faults in both directions the final parameters must equal the clean run's
exactly, the per-step verdicts against the golden model must hold, and the transport's
audit must count no frame that arrived valid without having been sent.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rig.config import load_config
from rig.connection import connect
from rig.link.faults import FaultSpec, FaultyTransport
from rig.session import RunSpec, TrainingSession
from rig.targets import resolve_target

JOB = RunSpec(epochs=1, train_samples=128, test_samples=64, batch=16)
FAULTS = "flip=1e-3,drop=5e-4,dup=5e-4,delay=2e-5,stall=0.01"


def train(target_name: str, faults: FaultSpec | None
          ) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool, FaultyTransport | None, dict]:
    lab = load_config(None)
    conn = connect(resolve_target(lab, target_name), timeout=lab.defaults.timeout_s,
                   retries=lab.defaults.retries)
    try:
        wrapper = None
        if faults is not None:
            wrapper = FaultyTransport(conn.device.link.transport, faults, audit=True)
            conn.device.link.transport = wrapper
        session = TrainingSession(conn.device, JOB)
        session.prepare()
        report = session.run()
        return conn.device.read_model(), report.ok, wrapper, conn.device.link.stats.as_dict()
    finally:
        conn.close()


def check(target_name: str) -> None:
    clean, ok, _, _ = train(target_name, None)
    assert ok
    noisy, ok, wrapper, stats = train(target_name, FaultSpec.parse(FAULTS + ",seed=12"))
    assert ok and wrapper is not None
    counts = wrapper.counts
    assert counts.total >= 20, counts.summary()  # faults really happened ...
    assert stats["retransmits"] > 0  # ... and were repaired
    assert counts.silent == 0
    for (w0, b0), (w1, b1) in zip(clean, noisy, strict=True):
        assert w0.tobytes() == w1.tobytes() and b0.tobytes() == b1.tobytes()


def test_native_training_through_faults_equals_clean_run() -> None:
    check("native")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                    reason="qemu-system-arm not installed (apt-get install -y qemu-system-arm)")
def test_qemu_training_through_faults_equals_clean_run() -> None:
    check("qemu")
