#!/usr/bin/env bash
# Install everything tinyrig needs on a fresh Debian/Ubuntu machine: the ARM toolchain,
# QEMU, gdb, ser2net and clang (libFuzzer) from apt (only what is missing), then this
# package and its Python dependencies (torch pinned to the CPU build) from PyPI. Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
command -v gdb-multiarch >/dev/null || need_apt+=(gdb-multiarch)
command -v make >/dev/null || need_apt+=(make)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v ser2net >/dev/null || [ -x /usr/sbin/ser2net ] || need_apt+=(ser2net)  # labgrid farm
command -v clang >/dev/null || need_apt+=(clang)  # libFuzzer harness (make -C firmware fuzz)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need_apt[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
# Always (re)install editable: another checkout of tinyrig may own the installed package.
echo "setup: installing the tinyrig Python package (editable) and its dependencies"
"$PY" -c "import torch" >/dev/null 2>&1 || "$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check -e '.[test,labgrid]'
echo "setup: ok ($("$PY" -c 'import torch; print("torch", torch.__version__)'), $(qemu-system-arm --version | head -1))"
