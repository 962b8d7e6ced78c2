"""Data files of the package: the board catalogue (`boards.yaml`) and the default lab
configuration (`lab_config.yaml`, the repository's own, linked here so it travels in the
wheel). Read with `importlib.resources` through `rig.resources`."""
