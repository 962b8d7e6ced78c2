"""Names of the frozen int8 backbones the golden model can build (`rig.golden.quant`), here
without torch so the command line can check `--backbone` before anything heavy loads."""

from __future__ import annotations

DEFAULT_BACKBONE = "digits-cnn"
#: every name `rig.golden.quant.backbone_by_name` accepts
NAMES: tuple[str, ...] = (DEFAULT_BACKBONE,)
