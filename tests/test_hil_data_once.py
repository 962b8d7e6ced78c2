"""Within one pytest session each target receives each data set once (issue 14): an inner
suite of several training tests on one QEMU target; the DATA_WRITE payload bytes the link
sent, counted by the link itself, add up to exactly one upload of the stored split."""

from __future__ import annotations

import json

import pytest

from rig.golden.data import digits_split
from rig.protocol import DataWrite, encode_records

pytestmark = [pytest.mark.hil, pytest.mark.slow]

INNER = """
import json, os

def _record(dut, session, name):
    with open(os.environ["DATA_ONCE_LOG"], "a") as f:
        f.write(json.dumps({"test": name, "link": id(dut.link), "uploaded": session.uploaded,
                            "data_write": dut.link.stats.payload_tx_by_type["DATA_WRITE"],
                            "resent": dut.link.stats.retransmits + dut.link.stats.resplits,
                            "max_payload": dut.info.max_payload}) + "\\n")

def test_a(rig_dut, train_session):
    s = train_session(train_samples=48, test_samples=32, epochs=1)
    assert s.run().ok
    _record(rig_dut, s, "a")

def test_b(rig_dut, train_session):
    s = train_session(strategy="tinyprop", train_samples=32, test_samples=16, epochs=1)
    assert s.run().ok
    _record(rig_dut, s, "b")

def test_c(rig_dut, train_session):
    s = train_session(train_samples=16, test_samples=64, epochs=1, batch=8)
    assert s.run().ok
    _record(rig_dut, s, "c")
"""


def test_one_upload_per_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    log = pytester.path / "data_once.jsonl"
    monkeypatch.setenv("DATA_ONCE_LOG", str(log))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:labgrid",
                                           "--rig-target", "qemu")
    result.assert_outcomes(passed=3)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["test"] for r in rows] == ["a", "b", "c"]
    assert len({r["link"] for r in rows}) == 1, "the target was restarted between tests"
    assert [r["uploaded"] for r in rows] == [True, False, False]
    # One upload of the whole split [train | val | test] (the lab's seed and val_samples),
    # computed here from the data, not from the rig's session code.
    split = digits_split(seed=0, n_val=64)
    n = len(split.train) + len(split.val) + len(split.test)
    record = len(encode_records(split.train.labels[:1], split.train.q[:1], "u8"))
    per_packet = (rows[0]["max_payload"] - DataWrite.OVERHEAD) // record
    one_upload = n * record + DataWrite.OVERHEAD * -(-n // per_packet)
    first = rows[0]["data_write"]
    # No DATA_WRITE byte after the first test: the later sessions sent nothing.
    assert [r["data_write"] for r in rows] == [first] * 3
    if rows[-1]["resent"] == 0:
        assert first == one_upload
    else:  # a retransmitted or re-split frame (slow host) adds its bytes again, not a 2nd set
        assert one_upload <= first < 2 * one_upload, (first, one_upload, rows[-1]["resent"])
