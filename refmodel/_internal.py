"""What several refmodel modules share and no caller outside refmodel should use, grouped by owner (like mm/internal.h).

Public names live in their mechanism's module; this is the third tier
between those and module-private helpers.
"""

from __future__ import annotations

# -- machine: shared with presets ------------------------------------------------------


def format_size(nbytes: int) -> str:
    """A byte count as a person reads it: "64 MiB", "1.5 MiB", "640 B" (for descriptions and error messages)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):.1f} MiB"
    return f"{nbytes} B"
