"""tinyrig: hardware-in-the-loop test rig for sparse on-device training on Cortex-M."""

__version__ = "0.1.0"
