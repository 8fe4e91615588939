"""GFP masks as callers write them: a base with a valid zone modifier and a few action modifiers.

Masks are built the way callers write them: a base (GFP_KERNEL, GFP_ATOMIC,
...) with its zone bits replaced by a valid zone modifier from
GFP_ZONE_TABLE, plus action modifiers. Invalid zone combinations
(GFP_ZONE_BAD) come from their own strategy, used only against
implementations that claim GFP-ZONE-BAD (include/linux/gfp.h).
"""

from __future__ import annotations

from functools import cache
from typing import Final

from hypothesis import strategies as st

from ...refmodel.gfp import (
    GFP,
    GFP_ATOMIC,
    GFP_HIGHUSER,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    GFP_NOFS,
    GFP_NOIO,
    GFP_NOWAIT,
    GFP_USER,
    GFP_ZONE_BAD,
    GFP_ZONE_TABLE,
    GFP_ZONEMASK,
)

BLOCKING_BASES: Final = (GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_USER, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE, GFP_KERNEL_ACCOUNT)
ATOMIC_BASES: Final = (GFP_ATOMIC, GFP_NOWAIT, GFP_ATOMIC | GFP.NOWARN)
MODIFIERS: Final = (GFP.ZERO, GFP.NOWARN, GFP.NORETRY, GFP.RETRY_MAYFAIL, GFP.NOFAIL, GFP.COMP, GFP.HIGH, GFP.MEMALLOC)


@cache
def zone_bits() -> st.SearchStrategy[int]:
    """A valid zone modifier (a GFP_ZONE_TABLE row), None meaning: keep the base's own."""
    return st.sampled_from(sorted(GFP_ZONE_TABLE))


@cache
def gfp_masks(*, blocking: bool) -> st.SearchStrategy[int]:
    """Valid GFP masks; ``blocking`` selects bases with or without __GFP_DIRECT_RECLAIM."""
    bases = BLOCKING_BASES if blocking else ATOMIC_BASES

    @st.composite
    def build(draw: st.DrawFn) -> int:
        base = int(draw(st.sampled_from(bases)))
        if draw(st.booleans()):
            base = (base & ~GFP_ZONEMASK) | draw(zone_bits())
        for flag in draw(st.lists(st.sampled_from(MODIFIERS), max_size=2, unique=True)):
            base |= int(flag)
        return base

    return build()


@cache
def bad_gfp_masks() -> st.SearchStrategy[int]:
    """Masks with a GFP_ZONE_BAD zone combination (more than one of DMA/DMA32/HIGHMEM)."""
    return st.tuples(st.sampled_from(BLOCKING_BASES + ATOMIC_BASES), st.sampled_from(sorted(GFP_ZONE_BAD))).map(
        lambda t: (int(t[0]) & ~GFP_ZONEMASK) | t[1]
    )
