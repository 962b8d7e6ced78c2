"""Where the package's data files are: found with `importlib.resources`, so the same code
works in a checkout, an editable install and an installed wheel.

    firmware_dir()     prebuilt images + manifest.json    (package rig._firmware;
                                                          $TINYRIG_FIRMWARE_DIR overrides)
    board_catalogue()  boards.yaml, the board catalogue   (package rig.data)
    default_lab()      lab_config.yaml, the default lab    (package rig.data)
    plugin_sources()   the QEMU TCG plugin's C sources     (package rig._qemu_plugin)
    firmware_sources() firmware/ with its Makefile, or None (only in a checkout)

`rig._firmware` and `rig._qemu_plugin` are mapped onto `firmware/prebuilt/` and
`firmware/tools/qemu_plugin/` by pyproject.toml's `package-dir`: the files live once, where
the firmware build writes them, and carry no `__init__.py` (one under firmware/ would change
the firmware source hash), so they are namespace packages. Installed from a wheel they are
folders of site-packages/rig/. setuptools' editable finder does not resolve a namespace
package mapped under a regular one, so an editable install (or a bare checkout) falls back
to the same folders in the checkout. Every location is a real directory, so `Path` works.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: environment variable naming a directory of images + manifest.json to use instead
FIRMWARE_ENV = "TINYRIG_FIRMWARE_DIR"

_CHECKOUT = Path(__file__).resolve().parent.parent


def _package_dir(package: str, probe: str, checkout: str) -> Path:
    """The folder of data package `package`, located through its file `probe`."""
    try:
        found = resources.files(package).joinpath(probe)
    except ModuleNotFoundError:  # editable install: see the module docstring
        return _CHECKOUT / checkout
    return Path(str(found)).parent


def firmware_dir() -> Path:
    """The prebuilt images: `$TINYRIG_FIRMWARE_DIR` or the package's own."""
    env = os.environ.get(FIRMWARE_ENV)
    return Path(env) if env else _package_dir("rig._firmware", "manifest.json",
                                              "firmware/prebuilt")


def board_catalogue() -> Path:
    return _package_dir("rig.data", "boards.yaml", "rig/data") / "boards.yaml"


def default_lab() -> Path:
    return _package_dir("rig.data", "lab_config.yaml", "rig/data") / "lab_config.yaml"


def plugin_sources() -> Path:
    return _package_dir("rig._qemu_plugin", "Makefile", "firmware/tools/qemu_plugin")


def firmware_sources() -> Path | None:
    """The firmware source tree (with its Makefile) when running from a checkout or an
    editable install; None in an installed wheel, which has only the prebuilt images."""
    src = _CHECKOUT / "firmware"
    return src if (src / "Makefile").is_file() else None


def rebuild_hint() -> str:
    """What a user can do about missing, stale or corrupt images, where they are."""
    if os.environ.get(FIRMWARE_ENV):
        return (f"refresh the images and manifest.json in ${FIRMWARE_ENV} "
                f"({os.environ[FIRMWARE_ENV]}) or unset it to use the package's own")
    if firmware_sources() is not None:
        return "rebuild them with `make -C firmware prebuilt`"
    return ("reinstall tinyrig (`pip install --force-reinstall tinyrig`), or point "
            f"${FIRMWARE_ENV} at a directory holding the images and manifest.json")


def user_cache_dir() -> Path:
    """Per-user cache for things built on first use (the QEMU plugin):
    `$XDG_CACHE_HOME/tinyrig` or `~/.cache/tinyrig`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyrig"
