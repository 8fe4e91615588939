"""Hypothesis strategies in kernel terms: GFP masks, orders, contexts.

Masks are built the way callers write them: a base (GFP_KERNEL, GFP_ATOMIC,
...) with its zone bits replaced by a valid zone modifier from
GFP_ZONE_TABLE, plus action modifiers. Invalid zone combinations
(GFP_ZONE_BAD) come from their own strategy, used only against
implementations that claim GFP-ZONE-BAD.
"""

from __future__ import annotations

from typing import Final

from hypothesis import strategies as st

from ..refmodel.context import Context
from ..refmodel.slab import SlabFlag
from ..refmodel.gfp import (
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
#: Contexts the page allocator may be called from; NMI is not one (CTX-NMI).
ALLOC_CONTEXTS: Final = (Context.PROCESS, Context.ATOMIC, Context.SOFTIRQ, Context.HARDIRQ)


def zone_bits() -> st.SearchStrategy[int]:
    """A valid zone modifier (a GFP_ZONE_TABLE row), None meaning: keep the base's own."""
    return st.sampled_from(sorted(GFP_ZONE_TABLE))


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


def bad_gfp_masks() -> st.SearchStrategy[int]:
    """Masks with a GFP_ZONE_BAD zone combination (more than one of DMA/DMA32/HIGHMEM)."""
    return st.tuples(st.sampled_from(BLOCKING_BASES + ATOMIC_BASES), st.sampled_from(sorted(GFP_ZONE_BAD))).map(
        lambda t: (int(t[0]) & ~GFP_ZONEMASK) | t[1]
    )


def orders(max_page_order: int) -> st.SearchStrategy[int]:
    """Orders 0..MAX_PAGE_ORDER + 1, small ones most often (as callers ask)."""
    return st.one_of(st.integers(0, min(2, max_page_order)), st.integers(0, max_page_order + 1))


def contexts() -> st.SearchStrategy[Context]:
    return st.sampled_from(ALLOC_CONTEXTS)


#: Sizes at the edges of the kmalloc buckets (KMALLOC-INDEX), where off-by-one bugs live.
BUCKET_EDGES: Final = (1, 7, 8, 9, 16, 17, 24, 32, 33, 64, 65, 96, 97, 128, 129, 192, 193, 256, 257, 512, 1000, 1024, 2048, 4095, 4096, 4097)


def kmalloc_sizes(max_cache_size: int, max_size: int) -> st.SearchStrategy[int]:
    """kmalloc sizes: 0, bucket edges, any slab size, large sizes up to just past KMALLOC_MAX_SIZE."""
    edges = [s for s in BUCKET_EDGES if s <= max_cache_size] + [max_cache_size, max_cache_size + 1, max_size, max_size + 1]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(1, 256),  # the small buckets, 96 and 192 among them, are where most objects live
        st.integers(1, max_cache_size),
        st.just(0),
        st.integers(max_cache_size + 1, max_size + 1),
        st.integers(max_size + 1, 2 * max_size),
    )


_DEBUG_FLAGS = (0, SlabFlag.RED_ZONE, SlabFlag.POISON, SlabFlag.RED_ZONE | SlabFlag.POISON,
                SlabFlag.RED_ZONE | SlabFlag.STORE_USER, SlabFlag.POISON | SlabFlag.TYPESAFE_BY_RCU)


def slab_flags(*, debug: bool = False) -> st.SearchStrategy[int]:
    """kmem_cache_create flags: cache-line alignment, the DMA zones, and SLUB's debug flags (always some with ``debug``)."""
    debug_flags = st.sampled_from([int(f) for f in (_DEBUG_FLAGS[1:5] if debug else _DEBUG_FLAGS)])
    return st.tuples(st.booleans(), st.sampled_from((0, int(SlabFlag.CACHE_DMA), int(SlabFlag.CACHE_DMA32))), debug_flags).map(
        lambda t: (int(SlabFlag.HWCACHE_ALIGN) if t[0] else 0) | t[1] | t[2]
    )


def cache_sizes() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((1, 8, 20, 40, 64, 100, 192, 500, 1024, 3000)), st.integers(1, 2048))


def aligns() -> st.SearchStrategy[int]:
    """0 (none) or a power of two up to 256."""
    return st.sampled_from((0, 8, 16, 32, 64, 128, 256))
