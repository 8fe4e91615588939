"""Hypothesis strategies in kernel terms, one module per subsystem: GFP masks, orders and contexts, kmalloc sizes, cache arguments.

A subsystem's strategies live in ``strategies/<subsystem>.py`` beside its
rule set in ``machines/<subsystem>.py``. The names below are re-exported so
``from kmemspec.properties.strategies import gfp_masks`` keeps working.
"""

from .gfp import ATOMIC_BASES, BLOCKING_BASES, MODIFIERS, bad_gfp_masks, gfp_masks, zone_bits
from .kmalloc import BUCKET_EDGES, kmalloc_sizes
from .pages import ALLOC_CONTEXTS, ATOMIC_CONTEXTS, contexts, orders
from .slab import aligns, cache_sizes, slab_flags

__all__ = [
    "ALLOC_CONTEXTS",
    "ATOMIC_CONTEXTS",
    "ATOMIC_BASES",
    "BLOCKING_BASES",
    "BUCKET_EDGES",
    "MODIFIERS",
    "aligns",
    "bad_gfp_masks",
    "cache_sizes",
    "contexts",
    "gfp_masks",
    "kmalloc_sizes",
    "orders",
    "slab_flags",
    "zone_bits",
]
