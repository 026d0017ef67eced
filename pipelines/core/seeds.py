"""Seeds, the same way everywhere: -1 (or nothing) means "pick one at random"; the seed actually used
is returned so that it can be shown and reused. A value the user typed is never overwritten.
"""
from __future__ import annotations

import math
import random
from typing import Any

from .errors import UserError

SEED_MAX = 2**31 - 1  # fits every framework's generator and a JavaScript number exactly


def check_seed(seed: Any, *, span: int = 1) -> int:
    """The seed as an int (-1 = random), or a clear error. ``span``: seeds seed..seed+span-1 get used."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return -1
    try:
        value = float(seed)
    except (TypeError, ValueError):
        raise _out_of_range(span) from None
    if not math.isfinite(value) or value != int(value):
        raise _out_of_range(span)
    value = int(value)
    if value != -1 and not 0 <= value <= SEED_MAX - (span - 1):
        raise _out_of_range(span)
    return value


def resolve_seed(seed: Any, *, span: int = 1) -> int:
    """The seed to use: the one given, or a fresh random one for -1 / None (checked first)."""
    value = check_seed(seed, span=span)
    return random.randint(0, SEED_MAX - (span - 1)) if value < 0 else value


def _out_of_range(span: int) -> UserError:
    top = SEED_MAX - (span - 1)
    return UserError(f"The seed must be a whole number from 0 to {top}, or -1 for a random one.",
                     zh=f"随机种子必须是 0 到 {top} 之间的整数，或用 -1 表示随机。")
