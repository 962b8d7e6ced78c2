#!/usr/bin/env bash
# Packaging check: tinyrig as a lab adopts it. Builds the wheel from this checkout, installs
# it into a fresh venv outside the repository (no system site-packages) next to
# pytest-embedded and labgrid (their plugins installed normally), and from an empty folder:
#   1. the wheel carries the images, manifest, board catalogue, default lab and plugin sources
#   2. rig --version, rig list, rig run --epochs 1, rig profile on one strategy (QEMU)
#   3. pyocd is not installed (QEMU-only use needs none of the [boards] extra)
#   4. a small lab suite (examples/lab_suite: a lab_config.yaml listing only its targets)
#      through the installed plugin with --strict-markers -m hil: no option clash, each
#      fixture name from the plugin that owns it, JUnit (xunit2, warnings as errors) carries
#      the figures.
# Called by .ci/run; wall time printed at the end. PYTHON selects the interpreter.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tinyrig-packaging.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
T0=$SECONDS
say() { echo "packaging: $* ($((SECONDS - T0)) s)"; }

# --- the wheel, from the files git knows (a stale build/ of the checkout cannot leak in)
mkdir "$WORK/src" "$WORK/dist"
(cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) \
    | tar -xf - -C "$WORK/src"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src" >/dev/null
WHEEL="$(ls "$WORK"/dist/tinyrig-*.whl)"
say "built $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KB)"
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["rig/_firmware/manifest.json", "rig/_firmware/mps2-an386.elf", "rig/data/boards.yaml",
        "rig/data/lab_config.yaml", "rig/_qemu_plugin/trcount.c", "rig/_qemu_plugin/Makefile",
        "rig/py.typed"]
missing = [n for n in need if n not in names]
assert not missing, f"wheel lacks {missing}"
EOF

# --- a fresh venv: the wheel, torch (the CPU build the project is measured with), and the
# two plugins labs already run (--no-compile: pip would byte-compile all of torch)
"$PY" -m venv "$WORK/venv"
VBIN="$WORK/venv/bin"
"$VBIN/pip" install -q --disable-pip-version-check --no-compile "$WHEEL" torch==2.13.0 labgrid \
    pytest-embedded 2>&1 | grep -v "^WARNING: Location" || true
"$VBIN/python" -c "import rig, labgrid, pytest_embedded, torch" \
    || { echo "packaging: install failed"; exit 1; }
say "venv with tinyrig, torch, labgrid, pytest-embedded"
if "$VBIN/python" -c "import pyocd" 2>/dev/null; then
    echo "packaging: pyocd got installed; it must be only in the [boards] extra"; exit 1
fi

# --- the CLI from an empty folder (so nothing of the checkout is found), plugin cache there
LAB="$WORK/lab"
mkdir "$LAB"
cd "$LAB"
export XDG_CACHE_HOME="$WORK/cache"
unset TINYRIG_LAB_CONFIG TINYRIG_FIRMWARE_DIR TINYRIG_PLUGIN_DIR
"$VBIN/rig" --version
"$VBIN/rig" list >"$WORK/list.txt" || { cat "$WORK/list.txt"; exit 1; }
grep -q "site-packages/rig/data/lab_config.yaml" "$WORK/list.txt" \
    || { cat "$WORK/list.txt"; echo "packaging: rig list did not use the package's lab"; exit 1; }
"$VBIN/rig" run --epochs 1 --train-samples 256 --test-samples 64 >"$WORK/run.txt" \
    || { cat "$WORK/run.txt"; exit 1; }
tail -1 "$WORK/run.txt"
say "rig list, rig run"
"$VBIN/rig" profile --only --strategy tinyprop --steps 4 --epochs 1 --no-charts \
    --out "$WORK/profile" >"$WORK/profile.txt" || { cat "$WORK/profile.txt"; exit 1; }
test -s "$WORK/profile/profile.json"
ls "$XDG_CACHE_HOME"/tinyrig/qemu_plugin/*/libtrcount.so >/dev/null
say "rig profile (QEMU plugin built into the user cache)"

# --- a lab suite through the installed plugin, next to pytest-embedded and labgrid.
# Those two do not run tests together (pytest-embedded's autouse fixtures take labgrid's
# `target`, which skips without --lg-env), so: all three loaded, the suite collects with
# --strict-markers -m hil and every fixture name comes from its own plugin; then the suite
# runs with each of them next to tinyrig.
cp "$REPO"/examples/lab_suite/* "$LAB/"
SUITE=(--strict-markers -m hil --rig-config lab_config.yaml --rig-target qemu test_lab.py)
"$VBIN/python" "$REPO/.ci/fixture_owners.py" "${SUITE[@]}" | tail -1
"$VBIN/python" -m pytest -p no:cacheprovider -p no:pytest_embedded -q "${SUITE[@]}" \
    --junitxml="$WORK/junit.xml" -o junit_family=xunit2 -W error::pytest.PytestWarning
"$VBIN/python" "$REPO/.ci/check_junit.py" "$WORK/junit.xml"
say "lab suite next to labgrid: passed, JUnit (xunit2, no PytestWarning) checked"
# pytest-embedded's own autouse fixtures warn (record_xml_attribute is experimental)
"$VBIN/python" -m pytest -p no:cacheprovider -p no:labgrid -q "${SUITE[@]}" \
    -W ignore::pytest.PytestExperimentalApiWarning
say "lab suite next to pytest-embedded: passed"
say "ok"
