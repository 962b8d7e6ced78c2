"""The one rich console every `rig` command prints through (rich is cheap to import; the
training stack is not, so nothing else lives here)."""

from __future__ import annotations

import sys

from rich.console import Console

# Wide enough for the epoch table when the output is a file or a CI log.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
