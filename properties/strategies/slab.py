"""kmem_cache_create arguments: object sizes, alignments, and the flags (HWCACHE_ALIGN, the DMA zones, SLUB debugging),
and requests near a live cache's geometry, which SLUB may merge into it."""

from __future__ import annotations

from functools import cache
from hypothesis import strategies as st

from ...refmodel.slab import Cache, SlabFlag

_DEBUG_FLAGS = (0, SlabFlag.RED_ZONE, SlabFlag.POISON, SlabFlag.RED_ZONE | SlabFlag.POISON,
                SlabFlag.RED_ZONE | SlabFlag.STORE_USER, SlabFlag.POISON | SlabFlag.TYPESAFE_BY_RCU)


@cache
def slab_flags(*, debug: bool = False) -> st.SearchStrategy[int]:
    """kmem_cache_create flags: cache-line alignment, the DMA zones, and SLUB's debug flags (always some with ``debug``)."""
    debug_flags = st.sampled_from([int(f) for f in (_DEBUG_FLAGS[1:5] if debug else _DEBUG_FLAGS)])
    return st.tuples(st.booleans(), st.sampled_from((0, int(SlabFlag.CACHE_DMA), int(SlabFlag.CACHE_DMA32))), debug_flags).map(
        lambda t: (int(SlabFlag.HWCACHE_ALIGN) if t[0] else 0) | t[1] | t[2]
    )


@cache
def cache_sizes() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((1, 8, 20, 40, 64, 100, 192, 500, 1024, 3000)), st.integers(1, 2048))


@cache
def aligns() -> st.SearchStrategy[int]:
    """0 (none) or a power of two up to 256."""
    return st.sampled_from((0, 8, 16, 32, 64, 128, 256))


def twin_requests(cache: Cache) -> st.SearchStrategy[tuple[int, int, int]]:
    """(size, align, flags) near ``cache``'s: a word less or the same size, its alignment or less, its flags or
    others; find_mergeable merges some of them (mm/slab_common.c), the rest make caches of their own."""
    sizes = st.integers(max(1, cache.object_size - 8), cache.object_size + 8)
    flags = st.one_of(st.just(cache.flags), st.just(cache.flags | int(SlabFlag.NO_MERGE)), slab_flags())
    return st.tuples(sizes, st.sampled_from((0, 8, cache.align, 2 * cache.align)), flags)
