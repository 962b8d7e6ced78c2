"""A short, bounded libFuzzer pass over the firmware's receive path and every handler
(firmware/fuzz/fuzz_proto.c, ASan + UBSan), from the committed seed corpus. The long pass
is `make -C firmware fuzz-long` (firmware/fuzz/README.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rig.firmware import FIRMWARE_SRC

RUNS = 30_000        # executions of the short pass ...
MAX_SECONDS = 60     # ... or this long, whichever comes first

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]


def _libfuzzer_missing(tmp: Path) -> str | None:
    clang = shutil.which("clang")
    if clang is None:
        return "clang not installed (apt-get install -y clang): no libFuzzer"
    probe = tmp / "probe.c"
    probe.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                     "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                     " { (void)d; (void)n; return 0; }\n")
    r = subprocess.run([clang, "-fsanitize=fuzzer,address,undefined", str(probe), "-o",
                        str(tmp / "probe")], capture_output=True, text=True)
    if r.returncode != 0:
        return f"clang cannot link libFuzzer: {r.stderr.strip()[:200]}"
    return None


def test_short_fuzz_pass_finds_no_crash(tmp_path: Path) -> None:
    why = _libfuzzer_missing(tmp_path)
    if why:
        pytest.skip(why)
    build = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(FIRMWARE_SRC), "fuzz", f"BUILD={build}"],
                   check=True, capture_output=True, text=True)
    exe = build / "fuzz" / "fuzz_proto"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    r = subprocess.run(
        [str(exe), f"-runs={RUNS}", f"-max_total_time={MAX_SECONDS}", "-max_len=4096",
         "-timeout=10", "-rss_limit_mb=1024", "-print_final_stats=1", "-seed=1",
         f"-artifact_prefix={tmp_path}/", str(corpus), str(FIRMWARE_SRC / "fuzz" / "corpus")],
        capture_output=True, text=True, timeout=MAX_SECONDS + 120)
    tail = "\n".join(r.stderr.splitlines()[-30:])
    assert r.returncode == 0, f"the fuzzer found a crash:\n{tail}"
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))
    done = re.search(r"stat::number_of_executed_units:\s+(\d+)", r.stderr)
    assert done is not None and int(done.group(1)) >= 1000, tail  # it really ran
