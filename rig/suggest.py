""""Did you mean …?" for every face that names a thing (lab-file keys, targets, strategies).

Ground floor (standard library only), so the torch-free catalogue `rig.strategies` and the
config loader can share it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word closest to `word`, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest known word, or ''."""
    best = closest(word, known)
    return f" (did you mean {best!r}?)" if best else ""
