"""kmalloc sizes: the bucket edges (KMALLOC-INDEX), the slab range, large kmalloc and past KMALLOC_MAX_SIZE."""

from __future__ import annotations

from functools import cache
from typing import Final

from hypothesis import strategies as st

#: Sizes at the edges of the kmalloc buckets (KMALLOC-INDEX), where off-by-one bugs live.
BUCKET_EDGES: Final = (1, 7, 8, 9, 16, 17, 24, 32, 33, 64, 65, 96, 97, 128, 129, 192, 193, 256, 257, 512, 1000, 1024, 2048, 4095, 4096, 4097)


@cache
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
