"""kmalloc: size classes, alignment, and what kmalloc, kfree, krealloc and ksize may do.

Models the kmalloc side of ``include/linux/slab.h`` (ZERO_SIZE_PTR,
KMALLOC_SHIFT_*, the size classes) and ``mm/slab_common.c`` / ``mm/slub.c``
(kmalloc_size_roundup, __do_kmalloc_node, ___kmalloc_large_node, kfree,
__do_krealloc). A request up to KMALLOC_MAX_CACHE_SIZE is an object of a
kmalloc cache (its bucket); above it, up to KMALLOC_MAX_SIZE, a compound
page block of its own; beyond, NULL.

Invariants: ksize() of kmalloc(n) is kmalloc_size_roundup(n); the object is
aligned to at least ARCH_KMALLOC_MINALIGN and a power-of-two size to itself;
kfree(NULL) and kfree(ZERO_SIZE_PTR) do nothing. kmalloc may sleep as its
gfp says (might_alloc).

Neighbours: kmalloc objects live in the slab layer's object index
(``slab``), which also judges what they share with kmem_cache objects
(overlap, lowmem, zone, the slab misuse rules); ``objects`` composes the two
with ``slab_debug``. Page orders come from ``page_alloc``.
"""

from __future__ import annotations

from typing import Final

from .context import Context
from .errors import BadFree, InvalidFree, UnexpectedGfp
from .expectation import Expectation, Outcome
from .gfp import GFP_INT
from .machine import Machine
from .page_alloc import get_order
from .rules import Level, Rule
from ._subsystem import Kind, Returns, Subsystem, op
from .slab import GFP_SLAB_BUG_MASK, GFP_SLAB_KEEP, LiveObject, SlabLayer, slab_gfp_bug

ZERO_SIZE_PTR: Final = 16
"""kmalloc(0)'s answer: ((void *)16), faults on use; ZERO_OR_NULL_PTR(x) is x <= 16 (include/linux/slab.h)."""

ARCH_KMALLOC_MINALIGN: Final = 8
"""x86 has no ARCH_DMA_MINALIGN, so kmalloc aligns to __alignof__(unsigned long long) (include/linux/slab.h)."""

KMALLOC_SHIFT_LOW: Final = 3
"""ilog2(KMALLOC_MIN_SIZE): 8-byte minimum object (include/linux/slab.h)."""


def kmalloc_shift_high(m: Machine) -> int:
    """KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1 under SLUB (include/linux/slab.h)."""
    return m.page_shift + 1


def kmalloc_max_cache_size(m: Machine) -> int:
    """KMALLOC_MAX_CACHE_SIZE: the largest request served by a kmalloc cache, 2 * PAGE_SIZE (include/linux/slab.h)."""
    return 1 << kmalloc_shift_high(m)


def kmalloc_max_size(m: Machine) -> int:
    """KMALLOC_MAX_SIZE = 1 << (MAX_PAGE_ORDER + PAGE_SHIFT): above it kmalloc fails (include/linux/slab.h)."""
    return 1 << (m.max_page_order + m.page_shift)


def kmalloc_bucket(size: int) -> int:
    """The kmalloc cache object size for 1 <= size <= KMALLOC_MAX_CACHE_SIZE (fact KMALLOC-INDEX).

    mm/slab_common.c kmalloc_size_index[] / include/linux/slab.h __kmalloc_index:
    8 for sizes up to KMALLOC_MIN_SIZE, 96 for 65..96, 192 for 129..192,
    otherwise the next power of two.
    """
    if size <= 1 << KMALLOC_SHIFT_LOW:
        return 1 << KMALLOC_SHIFT_LOW
    if 64 < size <= 96:
        return 96
    if 128 < size <= 192:
        return 192
    return 1 << (size - 1).bit_length()


def kmalloc_size_roundup(size: int, m: Machine) -> int:
    """What ksize() of kmalloc(size) is (mm/slab_common.c kmalloc_size_roundup).

    0 for 0; the bucket for slab-served sizes; PAGE_SIZE << get_order(size)
    up to KMALLOC_MAX_SIZE (a compound page block); the size itself beyond.
    """
    if size <= 0:
        return 0
    if size <= kmalloc_max_cache_size(m):
        return kmalloc_bucket(size)
    if size <= kmalloc_max_size(m):
        return m.page_size << get_order(size, m.page_shift)
    return size


def _size_name(size: int) -> str:
    return f"{size >> 10}k" if size >= 1024 else str(size)


def kmalloc_bucket_name(size: int, m: Machine) -> str:
    """What serves a kmalloc of ``size`` (> 0) bytes, by the kernel's cache name (mm/slab_common.c kmalloc_info[]:
    kmalloc-96, kmalloc-1k); above KMALLOC_MAX_CACHE_SIZE the page block's order; above KMALLOC_MAX_SIZE nothing."""
    if size <= kmalloc_max_cache_size(m):
        return f"kmalloc-{_size_name(kmalloc_bucket(size))}"
    if size <= kmalloc_max_size(m):
        return f"kmalloc large order-{get_order(size, m.page_shift)}"
    return "kmalloc above KMALLOC_MAX_SIZE"


def kmalloc_bucket_names(m: Machine) -> list[str]:
    """Every name ``kmalloc_bucket_name`` gives on ``m`` to a size kmalloc can serve, smallest first."""
    sizes = sorted({kmalloc_bucket(s) for s in (8, 96, 192)} | {1 << k for k in range(KMALLOC_SHIFT_LOW, kmalloc_shift_high(m) + 1)})
    large = range(get_order(kmalloc_max_cache_size(m) + 1, m.page_shift), m.max_page_order + 1)
    return [f"kmalloc-{_size_name(s)}" for s in sizes] + [f"kmalloc large order-{k}" for k in large]


def kmalloc_min_align(size: int) -> int:
    """The alignment kmalloc guarantees for ``size`` (include/linux/slab.h kmalloc kernel-doc).

    At least ARCH_KMALLOC_MINALIGN; a power-of-two size is aligned to itself,
    any other size to its largest power-of-two divisor.
    """
    if size <= 0:
        return 1
    return max(ARCH_KMALLOC_MINALIGN, size & -size)


class KmallocModel:
    """kmalloc's oracle over the slab layer's object index: what kmalloc, kfree and krealloc may do."""

    def __init__(self, slab: SlabLayer) -> None:
        self.slab = slab

    def expect_kmalloc(self, size: int, gfp: int, ctx: Context) -> Expectation:
        """What kmalloc(size, gfp) may do in ``ctx`` (mm/slub.c __do_kmalloc_node)."""
        m = self.slab.machine
        if size == 0:
            return Expectation(Outcome.MUST_SUCCEED, "KMALLOC-ZERO-SIZE", "kmalloc(0) returns ZERO_SIZE_PTR")
        if size > kmalloc_max_size(m):
            # The large path fixes the flags, then the page allocator refuses the order before might_alloc().
            return Expectation(Outcome.MUST_FAIL, "KMALLOC-MAX-SIZE", f"{size} bytes is above KMALLOC_MAX_SIZE {kmalloc_max_size(m)}",
                               also_report=(UnexpectedGfp,) if slab_gfp_bug(gfp) else ())
        bucket = kmalloc_size_roundup(size, m)
        if not self.slab.liveness_judged(gfp):
            return self.slab.expect_object(bucket, gfp, ctx)
        fixed = gfp & ~GFP_SLAB_BUG_MASK
        if size > kmalloc_max_cache_size(m):  # ___kmalloc_large_node: alloc_pages(flags | __GFP_COMP)
            need = (get_order(size, m.page_shift), fixed | GFP_INT.COMP, f"a large kmalloc of {size} bytes")
        else:
            need = (get_order(bucket, m.page_shift), (fixed & GFP_SLAB_KEEP) | (fixed & GFP_INT.DMA) | GFP_INT.COMP,
                    f"a new kmalloc-{bucket} slab")
        return self.slab.expect_object(bucket, gfp, ctx, need)

    def expect_kfree(self, addr: int) -> Expectation:
        """Whether kfree(addr) is valid, or the misuse it is: NULL and ZERO_SIZE_PTR do nothing (KFREE-NULL)."""
        if addr <= ZERO_SIZE_PTR:
            return Expectation(Outcome.MUST_SUCCEED, "KFREE-NULL", f"kfree({addr:#x}) does nothing (ZERO_OR_NULL_PTR)", noop=True)
        return self.slab.expect_object_free(addr, cid=None)

    def large_object_at(self, pfn: int) -> LiveObject | None:
        """The live large kmalloc object whose block starts at ``pfn``, or None."""
        m, slab = self.slab.machine, self.slab
        obj = slab.objects.get(m.pfn_to_virt(pfn))
        if obj is None or obj.cache is not None or obj.alloc_size <= kmalloc_max_cache_size(m):
            return None
        block = slab.slab_blocks.get(pfn)
        if block != (0, get_order(obj.alloc_size, m.page_shift)) or slab.slab_usage.get(pfn) != (1, 1):
            return None  # served from a slab of several objects, not a block of its own
        return obj

    def expect_free_large_block(self, pfn: int, order: int) -> Expectation | None:
        """SLAB-PAGE-BAD-FREE: free_pages(pfn, order) of a large kmalloc block the slab layer shows, or None.

        A large kmalloc block is a plain compound page in 6.12, freed without
        complaint; later kernels type it too, so a report is allowed and then
        nothing changes. None also for another order: that is the page
        oracle's BUDDY-FREE-WRONG-ORDER.
        """
        if not self.slab.exact or self.large_object_at(pfn) is None:
            return None
        if order != self.slab.slab_blocks[pfn][1]:
            return None  # a compound block freed with another order: the page oracle's BUDDY-FREE-WRONG-ORDER
        return Expectation(Outcome.MUST_SUCCEED, "SLAB-PAGE-BAD-FREE", f"free_pages of the large kmalloc block at pfn {pfn:#x} frees it (or is reported)",
                           also_report=(BadFree, InvalidFree))

    def adopt_resize(self, addr: int, size: int) -> None:
        """krealloc in place: the object keeps its address, its size changes."""
        obj = self.slab.objects[addr]
        obj.size, obj.span = size, 0


# -- the subsystem ----------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule("KMALLOC-ZERO-SIZE", "kmalloc", Level.SAFETY, "kmalloc(0) (and a kmalloc_array or krealloc of 0 bytes) returns ZERO_SIZE_PTR, 16, and reports nothing",
       "include/linux/slab.h ZERO_SIZE_PTR; mm/slub.c __do_kmalloc_node (before slab_pre_alloc_hook)"),
    Rule("KFREE-NULL", "kmalloc", Level.SAFETY, "kfree(NULL) and kfree(ZERO_SIZE_PTR) do nothing; ksize() of either is 0",
       "mm/slub.c kfree, ksize (ZERO_OR_NULL_PTR)"),
    Rule("KMALLOC-MAX-SIZE", "kmalloc", Level.SAFETY, "kmalloc above KMALLOC_MAX_SIZE (1 << (MAX_PAGE_ORDER + PAGE_SHIFT)) returns NULL",
       "include/linux/slab.h KMALLOC_MAX_SIZE; mm/page_alloc.c __alloc_frozen_pages_noprof (order > MAX_PAGE_ORDER)"),
    Rule("KMALLOC-ARRAY-OVERFLOW", "kmalloc", Level.SAFETY, "kmalloc_array(n, size) whose product overflows size_t returns NULL and allocates nothing",
       "include/linux/slab.h kmalloc_array_noprof (check_mul_overflow)"),
    Rule("KMALLOC-ALIGN", "kmalloc", Level.SAFETY, "a kmalloc object is aligned to ARCH_KMALLOC_MINALIGN (8) and to the largest power of two dividing its size (a power-of-two size to itself)",
       "include/linux/slab.h kmalloc kernel-doc; mm/slab_common.c create_boot_cache (kmalloc caches' align)"),
    Rule("KSIZE-COVERS", "kmalloc", Level.SAFETY, "ksize(p) is at least the size asked for, and the bytes up to it belong to p alone; for an object of a cache with SLAB_RED_ZONE or SLAB_POISON (where SLUB debugging lays them out) it is the object size",
       "mm/slub.c __ksize / ksize; mm/slab.h slab_ksize; include/linux/slab.h kmalloc_size_roundup kernel-doc"),
    Rule("KMALLOC-SIZE-CLASS", "kmalloc", Level.POLICY, "ksize(kmalloc(size)) is the kernel's bucket: 8, 16, 32, 64, 96, 128, 192, 256 ... KMALLOC_MAX_CACHE_SIZE (2 * PAGE_SIZE), then PAGE_SIZE << get_order(size)",
       "mm/slab_common.c kmalloc_size_roundup, kmalloc_size_index[]; include/linux/slab.h __kmalloc_index"),
    Rule("KZALLOC-ZERO", "kmalloc", Level.SAFETY, "kzalloc, and kmalloc or kmem_cache_alloc with __GFP_ZERO, return an object that reads zero over the size asked for",
       "include/linux/slab.h kzalloc; mm/slub.c slab_post_alloc_hook (init), ___kmalloc_large_node (__GFP_ZERO to the page allocator)", capability="memory"),
    Rule("KREALLOC", "kmalloc", Level.SAFETY, "krealloc keeps the old contents up to the smaller size; krealloc(NULL, n) allocates; krealloc(p, 0) frees p and returns ZERO_SIZE_PTR; on failure p stays live; a kmem_cache object stays in place only while the new size fits its ksize, else it moves to a kmalloc object",
       "mm/slab_common.c krealloc_noprof / __do_krealloc"),
    Rule("KMALLOC-GFP-BUG", "kmalloc", Level.DETECTION, "kmalloc with __GFP_HIGHMEM or __GFP_DMA32 reports UnexpectedGfp every time (unclaimed, the report is allowed, not required: the kernel warns only when it needs a new slab) and still returns lowmem",
       "mm/slab_common.c kmalloc_fix_flags (\"Unexpected gfp\"); mm/slub.c new_slab, ___kmalloc_large_node; mm/internal.h GFP_SLAB_BUG_MASK"),
)

OPS = (
    op("kmalloc", "kmalloc", ("size", Kind.SIZE), ("gfp", Kind.GFP), returns=Returns.OBJECT,
       doc="kmalloc(size, gfp): a logical address, ZERO_SIZE_PTR for 0 bytes, or NULL"),
    op("kzalloc", "kmalloc", ("size", Kind.SIZE), ("gfp", Kind.GFP), returns=Returns.OBJECT, doc="kzalloc = kmalloc | __GFP_ZERO"),
    op("kmalloc_array", "kmalloc", ("n", Kind.SIZE), ("size", Kind.SIZE), ("gfp", Kind.GFP), returns=Returns.OBJECT,
       doc="kmalloc_array(n, size, gfp): NULL when n * size overflows size_t"),
    op("krealloc", "kmalloc", ("addr", Kind.OBJECT), ("size", Kind.SIZE), ("gfp", Kind.GFP), returns=Returns.OBJECT,
       doc="krealloc(p, size, gfp)"),
    op("ksize", "kmalloc", ("addr", Kind.OBJECT), returns=Returns.SIZE, doc="ksize(p): the usable size of a live object"),
    op("kfree", "kmalloc", ("addr", Kind.OBJECT), doc="kfree(p); NULL and ZERO_SIZE_PTR do nothing"),
)

SUBSYSTEM = Subsystem(
    "kmalloc", "kmalloc, kzalloc, kmalloc_array, krealloc, ksize, kfree (include/linux/slab.h, mm/slab_common.c)",
    capabilities=("kmalloc",), rules=RULES, ops=OPS, applies_to=frozenset({"kmalloc"}), depends=("pages",),
)
