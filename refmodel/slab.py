"""The slab layer and kmalloc as a caller sees them: size classes, alignment, cache flags, the object oracle.

Constants and pure rules of ``include/linux/slab.h``, ``mm/slab_common.c``
and ``mm/slub.c`` (SLUB, the only slab allocator since 6.8), and
``SlabModel``, which tracks live objects beside the page oracle and says
what a kmalloc, kfree or cache operation may do.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field, replace
from typing import Final

from .context import Context, in_atomic
from .errors import (
    BadFree,
    CacheBusy,
    FreeWrongOrder,
    ConformanceFailure,
    DoubleFree,
    InvalidArgument,
    InvalidFree,
    SlabCorruption,
    SleepInAtomic,
    UnexpectedGfp,
    Violation,
    WrongCache,
    failure_for,
)
from .gfp import GFP, format_gfp, gfpflags_allow_blocking, zonelist_eligible
from .machine import Machine
from .page_alloc import Expectation, Outcome, PageAllocModel
from .rules import Level, Rule
from ._subsystem import Kind, Returns, Subsystem, op

_DMA, _DMA32, _COMP = int(GFP.DMA), int(GFP.DMA32), int(GFP.COMP)

ZERO_SIZE_PTR: Final = 16
"""kmalloc(0)'s answer: ((void *)16), faults on use; ZERO_OR_NULL_PTR(x) is x <= 16 (include/linux/slab.h)."""

ARCH_KMALLOC_MINALIGN: Final = 8
"""x86 has no ARCH_DMA_MINALIGN, so kmalloc aligns to __alignof__(unsigned long long) (include/linux/slab.h)."""

ARCH_SLAB_MINALIGN: Final = 8
"""__alignof__(unsigned long long) (include/linux/slab.h)."""

CACHE_LINE_SIZE: Final = 64
"""cache_line_size() on x86_64 (L1_CACHE_BYTES, arch/x86/include/asm/cache.h)."""

KMALLOC_SHIFT_LOW: Final = 3
"""ilog2(KMALLOC_MIN_SIZE): 8-byte minimum object (include/linux/slab.h)."""

GFP_SLAB_KEEP: Final = int(GFP.DIRECT_RECLAIM | GFP.KSWAPD_RECLAIM | GFP.HIGH | GFP.IO | GFP.FS | GFP.NOWARN | GFP.RETRY_MAYFAIL
                          | GFP.NOFAIL | GFP.NORETRY | GFP.MEMALLOC | GFP.NOMEMALLOC | GFP.HARDWALL | GFP.THISNODE)
"""GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK: what new_slab passes on of the caller's flags (mm/internal.h; mm/slub.c new_slab)."""

GFP_SLAB_BUG_MASK: Final = int(GFP.DMA32 | GFP.HIGHMEM)
"""__GFP_DMA32 | __GFP_HIGHMEM | ~__GFP_BITS_MASK (mm/internal.h); the last part holds no bit the model generates."""


class SlabFlag(enum.IntFlag):
    """kmem_cache_create() flags, as the protocol encodes them.

    Current kernels number these from the config-dependent enum
    _slab_flag_bits; the protocol uses the fixed values they had before
    (include/linux/slab.h, v5.x), so implementations need no kernel config.
    """

    CONSISTENCY_CHECKS = 0x100
    RED_ZONE = 0x400
    POISON = 0x800
    HWCACHE_ALIGN = 0x2000
    CACHE_DMA = 0x4000
    CACHE_DMA32 = 0x8000
    STORE_USER = 0x10000
    RECLAIM_ACCOUNT = 0x20000
    PANIC = 0x40000
    TYPESAFE_BY_RCU = 0x80000
    ACCOUNT = 0x4000000


POISON_FREE: Final = 0x6b
"""What a free object of a poisoned cache holds, but for its last byte (include/linux/poison.h)."""

POISON_END: Final = 0xa5
"""The last byte of a poisoned object (include/linux/poison.h)."""


def object_poison(size: int) -> bytes:
    """init_object's poison for an object of ``size`` bytes: POISON_FREE, then POISON_END (mm/slub.c)."""
    return bytes([POISON_FREE]) * (size - 1) + bytes([POISON_END])


def kmalloc_shift_high(m: Machine) -> int:
    """KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1 under SLUB (include/linux/slab.h)."""
    return m.page_shift + 1


def kmalloc_max_cache_size(m: Machine) -> int:
    """KMALLOC_MAX_CACHE_SIZE: the largest request served by a kmalloc cache, 2 * PAGE_SIZE (include/linux/slab.h)."""
    return 1 << kmalloc_shift_high(m)


def kmalloc_max_size(m: Machine) -> int:
    """KMALLOC_MAX_SIZE = 1 << (MAX_PAGE_ORDER + PAGE_SHIFT): above it kmalloc fails (include/linux/slab.h)."""
    return 1 << (m.max_page_order + m.page_shift)


def get_order(size: int, page_shift: int) -> int:
    """get_order(): the smallest order whose block holds ``size`` bytes (include/asm-generic/getorder.h)."""
    pages = (size - 1) >> page_shift
    return pages.bit_length()


def kmalloc_bucket(size: int) -> int:
    """The kmalloc cache object size for 1 <= size <= KMALLOC_MAX_CACHE_SIZE (KMALLOC-INDEX).

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


def kmalloc_min_align(size: int) -> int:
    """The alignment kmalloc guarantees for ``size`` (include/linux/slab.h kmalloc kernel-doc).

    At least ARCH_KMALLOC_MINALIGN; a power-of-two size is aligned to itself,
    any other size to its largest power-of-two divisor.
    """
    if size <= 0:
        return 1
    return max(ARCH_KMALLOC_MINALIGN, size & -size)


def calculate_alignment(flags: int, align: int, size: int) -> int:
    """A cache's object alignment (mm/slab_common.c calculate_alignment).

    SLAB_HWCACHE_ALIGN starts at the cache line and halves it while the
    object fits in half; the larger of that and ``align`` is raised to
    ARCH_SLAB_MINALIGN and rounded up to sizeof(void *).
    """
    if flags & SlabFlag.HWCACHE_ALIGN:
        ralign = CACHE_LINE_SIZE
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return -(-align // 8) * 8


def slab_gfp_bug(gfp: int) -> bool:
    """kmalloc_fix_flags' trigger: a zone bit the slab layer cannot honour (mm/slub.c new_slab, GFP_SLAB_BUG_MASK)."""
    return bool(gfp & GFP_SLAB_BUG_MASK)


# -- the object oracle ---------------------------------------------------------------

@dataclass
class Cache:
    """A kmem_cache as the model sees it: its geometry and its live objects."""

    cid: int
    name: str
    object_size: int
    align: int
    flags: int
    live: set[int] = field(default_factory=set)

    @property
    def poisoned(self) -> bool:
        """__OBJECT_POISON: SLAB_POISON without SLAB_TYPESAFE_BY_RCU (mm/slub.c calculate_sizes)."""
        return bool(self.flags & SlabFlag.POISON) and not self.flags & SlabFlag.TYPESAFE_BY_RCU

    @property
    def red_zoned(self) -> bool:
        return bool(self.flags & SlabFlag.RED_ZONE)

    @property
    def plain_stride(self) -> int | None:
        """s->size of a cache without debug flags or RCU: the object rounded up to a word, then to the alignment
        (mm/slub.c calculate_sizes; the free pointer lives inside the object). None for the others."""
        if self.flags & (SlabFlag.RED_ZONE | SlabFlag.POISON | SlabFlag.STORE_USER | SlabFlag.TYPESAFE_BY_RCU):
            return None
        return -(-(-(-self.object_size // 8) * 8) // self.align) * self.align

    @property
    def zone_gfp(self) -> int:
        """s->allocflags' zone bits: SLAB_CACHE_DMA adds GFP_DMA, SLAB_CACHE_DMA32 GFP_DMA32 (mm/slub.c calculate_sizes)."""
        if self.flags & SlabFlag.CACHE_DMA:
            return _DMA
        if self.flags & SlabFlag.CACHE_DMA32:
            return _DMA32
        return 0


@dataclass
class LiveObject:
    """A live object: its logical address, the bytes the caller asked for, where it came from."""

    addr: int
    size: int
    cache: int | None  # None: kmalloc
    gfp: int
    step: int
    span: int = 0  # bytes the caller may use (ksize once asked); at least ``size``
    alloc_size: int = 0  # the size it was allocated with: krealloc in place keeps its bucket

    @property
    def end(self) -> int:
        return self.addr + max(self.size, self.span)

    def describe(self) -> str:
        origin = "kmalloc" if self.cache is None else f"cache {self.cache}"
        return f"the live {self.size}-byte object at {self.addr:#x} ({origin}, step {self.step})"


@dataclass(frozen=True)
class FreeObject:
    """A free object of a debug cache whose slab the implementation still shows: its poison and red zones are checkable."""

    addr: int
    size: int
    cache: int
    slab: int  # first pfn of its slab

    def describe(self) -> str:
        return f"the free {self.size}-byte object at {self.addr:#x} (cache {self.cache})"


@dataclass(frozen=True)
class Corruption:
    """A byte the suite overwrote in a debug area: which object, which area, what it held before."""

    addr: int
    obj: int
    cache: int
    area: str  # "poison", "left red zone", "right red zone"
    rule_id: str
    old: int = 0

    def describe(self) -> str:
        kernel = {"poison": "Poison", "left red zone": "Left Redzone", "right red zone": "Right Redzone"}[self.area]
        return f"byte {self.addr:#x} in the {self.area} of the object at {self.obj:#x} (cache {self.cache}; SLUB: \"{kernel} overwritten\")"


class SlabModel:
    """The slab and kmalloc oracle for one machine, beside the page oracle.

    It tracks live objects by address and checks what an implementation
    returns against the kernel's rules; it does not know which pages the
    implementation's slabs hold, so it never predicts success of a small
    allocation except under SLAB-NO-SPURIOUS-FAIL's claim. Objects are kept
    in address order: overlap queries cost O(log live objects).
    """

    def __init__(self, machine: Machine, pages: PageAllocModel) -> None:
        self.machine, self.pages = machine, pages
        self.caches: dict[int, Cache] = {}
        self.objects: dict[int, LiveObject] = {}
        self._starts: list[int] = []
        self.freed: set[int] = set()  # addresses freed and not handed out again
        self.used = False  # the slab layer has taken pages the model cannot see
        self.exact = False  # the implementation shows its slabs (capability slab_info): page liveness stays exact
        self.slab_blocks: dict[int, tuple[int, int]] = {}  # first pfn -> (cache id or 0, order) of every reported slab block
        self.slab_usage: dict[int, tuple[int, int]] = {}  # first pfn -> (objects in use, objects in all), as last reported
        self.debug_free: dict[int, FreeObject] = {}  # free objects of poisoned or red-zoned caches, in slabs still shown
        self._debug_starts: list[int] = []
        self._debug_by_slab: dict[int, set[int]] = {}
        self._debug_by_cache: dict[int, set[int]] = {}
        self.corrupt: dict[int, list[Corruption]] = {}  # cache id -> bytes overwritten since its last validate
        #: The page rules that bind the implementation: a slab allocation must succeed only where one of them says its pages
        #: must (SLAB-NO-SPURIOUS-FAIL). Empty, the default, when the implementation does not claim that rule.
        self.page_liveness: frozenset[str] = frozenset()

    @property
    def opaque(self) -> bool:
        """Pages may be held by slabs the model cannot see."""
        return self.used and not self.exact

    # -- queries -------------------------------------------------------------------

    def object_at(self, addr: int) -> LiveObject | None:
        """The live object containing byte ``addr``, or None."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            obj = self.objects[self._starts[i]]
            if addr < obj.end:
                return obj
        return None

    def overlapping(self, start: int, end: int, *, ignore: int | None = None) -> LiveObject | None:
        """A live object other than ``ignore`` overlapping [start, end), or None (objects are disjoint)."""
        i = bisect.bisect_left(self._starts, end) - 1
        while i >= 0:
            obj = self.objects[self._starts[i]]
            if obj.addr == ignore:
                i -= 1
                continue
            return obj if obj.end > start else None
        return None

    @property
    def _liveness_judged(self) -> bool:
        """SLAB-NO-SPURIOUS-FAIL is judged: claimed (page_liveness set) and every slab page visible (exact)."""
        return self.exact and bool(self.page_liveness)

    def kmalloc_max_size(self) -> int:
        return kmalloc_max_size(self.machine)

    # -- expectations ------------------------------------------------------------------

    def expect_kmalloc(self, size: int, gfp: int, ctx: Context) -> Expectation:
        """What kmalloc(size, gfp) may do in ``ctx`` (mm/slub.c __do_kmalloc_node)."""
        if size == 0:
            return Expectation(Outcome.MUST_SUCCEED, "KMALLOC-ZERO-SIZE", "kmalloc(0) returns ZERO_SIZE_PTR")
        if size > self.kmalloc_max_size():
            # The large path fixes the flags, then the page allocator refuses the order before might_alloc().
            return Expectation(Outcome.MUST_FAIL, "KMALLOC-MAX-SIZE", f"{size} bytes is above KMALLOC_MAX_SIZE {self.kmalloc_max_size()}",
                               also_report=(UnexpectedGfp,) if slab_gfp_bug(gfp) else ())
        bucket = kmalloc_size_roundup(size, self.machine)
        if not self._liveness_judged:
            return self._expect_object(bucket, gfp, ctx)
        fixed = gfp & ~GFP_SLAB_BUG_MASK
        if size > kmalloc_max_cache_size(self.machine):  # ___kmalloc_large_node: alloc_pages(flags | __GFP_COMP)
            need = (get_order(size, self.machine.page_shift), fixed | _COMP, f"a large kmalloc of {size} bytes")
        else:
            need = (get_order(bucket, self.machine.page_shift), (fixed & GFP_SLAB_KEEP) | (fixed & _DMA) | _COMP,
                    f"a new kmalloc-{bucket} slab")
        return self._expect_object(bucket, gfp, ctx, need)

    def expect_cache_alloc(self, cid: int, gfp: int, ctx: Context) -> Expectation:
        """What kmem_cache_alloc(cache, gfp) may do (mm/slub.c slab_alloc_node); the cache's own zone is no misuse."""
        cache = self.caches[cid]
        stride = cache.plain_stride if self._liveness_judged else None
        need = None if stride is None else (get_order(stride, self.machine.page_shift), (gfp & GFP_SLAB_KEEP) | cache.zone_gfp | _COMP,
                                            f"a new slab of {stride}-byte objects")
        return self._expect_object(cache.object_size, gfp, ctx, need)

    def _expect_object(self, nbytes: int, gfp: int, ctx: Context, need: tuple[int, int, str] | None = None) -> Expectation:
        # Success is required only where the model sees every slab page (slab_info) and the page
        # allocator must supply what a new slab or a large kmalloc takes (SLAB-NO-SPURIOUS-FAIL, claimed).
        outcome = Expectation(Outcome.MAY_FAIL, "SLAB-NO-OVERLAP", f"an object of {nbytes} bytes needs room in a slab the model cannot see")
        if need is not None:
            order, page_gfp, what = need
            pages = self.pages.expect_alloc(page_gfp, order, logical=True)
            if pages.outcome is Outcome.MUST_SUCCEED and pages.rule_id in self.page_liveness:
                outcome = Expectation(Outcome.MUST_SUCCEED, "SLAB-NO-SPURIOUS-FAIL",
                                      f"{what} takes an order-{order} block ({format_gfp(page_gfp)}) and {pages.reason}")
        if gfpflags_allow_blocking(gfp) and in_atomic(ctx):
            also = (UnexpectedGfp,) if slab_gfp_bug(gfp) else ()
            return replace(outcome, report=SleepInAtomic, report_rule="CTX-MIGHT-SLEEP", also_report=also,
                           misuse=f"{format_gfp(gfp)} may block, but the caller runs in {ctx.name.lower()} context")
        if slab_gfp_bug(gfp):
            return replace(outcome, report=UnexpectedGfp, report_rule="KMALLOC-GFP-BUG",
                           misuse=f"{format_gfp(gfp)} has {format_gfp(gfp & GFP_SLAB_BUG_MASK)}, which the slab layer cannot honour (GFP_SLAB_BUG_MASK)")
        return outcome

    def expect_kfree(self, addr: int, *, cid: int | None = None) -> Expectation:
        """Whether kfree(addr) (or kmem_cache_free(cache cid, addr)) is valid, or the misuse it is."""
        fn = "kfree" if cid is None else "kmem_cache_free"
        if cid is None and addr <= ZERO_SIZE_PTR:
            return Expectation(Outcome.MUST_SUCCEED, "KFREE-NULL", f"kfree({addr:#x}) does nothing (ZERO_OR_NULL_PTR)")
        obj = self.objects.get(addr)
        if obj is not None:
            if cid is not None and obj.cache != cid:
                owner = "kmalloc" if obj.cache is None else f"cache {obj.cache}"
                e = _slab_misuse(WrongCache, "SLAB-WRONG-CACHE", f"kmem_cache_free(cache {cid}, {addr:#x}): the object belongs to {owner}")
                # A large kmalloc has no slab: cache_from_obj finds "not a Slab page".
                return replace(e, also_report=(InvalidFree,)) if obj.cache is None else e
            return Expectation(Outcome.MUST_SUCCEED, "SLAB-NO-OVERLAP", f"{fn} of a live object")
        inner = self.object_at(addr)
        if inner is not None:
            return _slab_misuse(InvalidFree, "SLAB-INVALID-FREE", f"{fn}({addr:#x}) points {addr - inner.addr} bytes into {inner.describe()}")
        pfn = self.machine.virt_to_pfn(addr)
        blk = self.pages.live_block_at(pfn) if pfn is not None else None
        if blk is not None and blk.pfn not in self.slab_blocks:
            # Checked before "already free": the page allocator may have handed a freed object's pages out since.
            return _slab_misuse(InvalidFree, "SLAB-INVALID-FREE", f"{fn}({addr:#x}) is inside the order-{blk.order} page block at pfn {blk.pfn:#x}, not a slab object")
        if addr in self.freed:
            # SLUB finds "Object already free" while the slab lives; once its pages went
            # back to the buddy allocator kfree sees no slab ("Not a kmalloc allocation").
            # If another cache's slab has taken the pages since, kmem_cache_free finds a WrongCache.
            also = (InvalidFree,) if cid is None else (InvalidFree, WrongCache)
            return replace(_slab_misuse(DoubleFree, "SLAB-DOUBLE-FREE", f"{fn}({addr:#x}): the object is already free"), also_report=also)
        return _slab_misuse(InvalidFree, None, f"{fn}({addr:#x}) was never returned by the slab layer")

    def expect_cache_destroy(self, cid: int, ctx: Context) -> Expectation:
        """kmem_cache_destroy: sleeps (slab_mutex); live objects are reported and stay (mm/slab_common.c)."""
        cache = self.caches[cid]
        if cache.live:
            first = min(cache.live)
            base = Expectation(Outcome.MUST_SUCCEED, "SLAB-DESTROY-BUSY", "", CacheBusy, "SLAB-DESTROY-BUSY", fatal=False,
                               misuse=f"cache {cid} ({cache.name}) still has {len(cache.live)} live objects (the first at {first:#x})")
        else:
            base = Expectation(Outcome.MUST_SUCCEED, "SLAB-DESTROY-BUSY", "an empty cache is destroyed")
        return self._may_sleep(base, "kmem_cache_destroy", ctx)

    def expect_cache_shrink(self, cid: int, ctx: Context) -> Expectation:
        """kmem_cache_shrink sleeps (cpus_read_lock, slab_mutex; mm/slab_common.c kmem_cache_shrink)."""
        base = Expectation(Outcome.MUST_SUCCEED, "SLAB-CONTENTS-INTACT", "shrinking frees only empty slabs")
        return self._may_sleep(base, "kmem_cache_shrink", ctx)

    def expect_cache_create(self, size: int, align: int, flags: int, ctx: Context) -> Expectation:
        """kmem_cache_create takes slab_mutex (mm/slab_common.c __kmem_cache_create_args); it may fail for memory."""
        base = Expectation(Outcome.MAY_FAIL, "SLAB-CACHE-ALIGN", "creating a cache allocates its kmem_cache")
        return self._may_sleep(base, "kmem_cache_create", ctx)

    def _may_sleep(self, base: Expectation, fn: str, ctx: Context) -> Expectation:
        """SLAB-CACHE-MIGHT-SLEEP: mutex_lock's might_sleep splat in atomic context; the call then goes on."""
        if not in_atomic(ctx):
            return base
        also = (base.report,) if base.report is not None else ()
        return replace(base, report=SleepInAtomic, report_rule="SLAB-CACHE-MIGHT-SLEEP", fatal=False, also_report=also,
                       misuse=f"{fn} in {ctx.name.lower()} context: it takes slab_mutex and may sleep")

    # -- checks ----------------------------------------------------------------------------

    def check_object(self, addr: int, size: int, gfp: int, *, align: int, align_rule: str, what: str, cid: int | None = None) -> None:
        """Raise the failure of the first rule a returned object breaks: lowmem RAM, zone, alignment, overlap."""
        m = self.machine
        first = m.virt_to_pfn(addr)
        last = m.virt_to_pfn(addr + max(size, 1) - 1)
        if first is None or last is None or not m.is_lowmem(last):
            raise failure_for("SLAB-LOWMEM", f"{what} returned {addr:#x}, which is not a lowmem logical address for {size} bytes (PAGE_OFFSET {m.page_offset:#x}, max_low_pfn {m.max_low_pfn:#x})")
        if not m.is_usable_block(first, last - first + 1):
            raise failure_for("SLAB-LOWMEM", f"{what} returned {addr:#x}: pfn {first:#x}..{last:#x} is not all free RAM (a hole or a reserved range)")
        high = self.pages.highest_zoneidx(gfp & ~GFP_SLAB_BUG_MASK)
        for pfn in (first, last):
            zone = m.zone_of_pfn(pfn)
            assert zone is not None
            if not zonelist_eligible(zone.zone_type, high):
                raise failure_for("SLAB-ZONE-ELIGIBLE", f"{what} returned {addr:#x} in ZONE_{zone.zone_type.name}, but {format_gfp(gfp & ~GFP_SLAB_BUG_MASK)} allows only ZONE_{high.name} and below")
        if addr % align:
            raise failure_for(align_rule, f"{what} returned {addr:#x}, which is not {align}-byte aligned ({addr:#x} % {align} = {addr % align})")
        self.check_free_of_objects(addr, addr + size, what)
        for pfn in range(first, last + 1):
            blk = self.pages.live_block_at(pfn)
            if blk is not None and blk.pfn not in self.slab_blocks:
                raise failure_for("SLAB-NO-OVERLAP", f"{what} returned {addr:#x}, inside the live order-{blk.order} page block at pfn {blk.pfn:#x} (step {blk.step})")
            if self.exact and (blk is None or (cid is not None and self.slab_blocks[blk.pfn][0] not in (cid, 0))):
                where = "no block the slab layer reports holding" if blk is None else f"the slab at pfn {blk.pfn:#x} of cache {self.slab_blocks[blk.pfn][0]}"
                raise failure_for("SLAB-INTROSPECT", f"{what} returned {addr:#x}, in pfn {pfn:#x}: {where}")

    def check_free_of_objects(self, start: int, end: int, what: str, *, ignore: int | None = None) -> None:
        other = self.overlapping(start, end, ignore=ignore)
        if other is not None:
            raise failure_for("SLAB-NO-OVERLAP", f"{what}: [{start:#x}, {end:#x}) overlaps {other.describe()}")

    def check_page_block(self, pfn: int, order: int) -> None:
        """A block alloc_pages returned holds no live object (SLAB-NO-OVERLAP)."""
        start = self.machine.page_offset + (pfn << self.machine.page_shift)
        self.check_free_of_objects(start, start + (self.machine.page_size << order), f"alloc_pages returned the order-{order} block at pfn {pfn:#x}")

    def sync_slabs(self, reported: list[tuple[int, int, int, int, int]], step: int) -> None:
        """SLAB-INTROSPECT: take the implementation's slab list into the page model.

        Each entry is (cache id, or 0 for kmalloc caches and large kmalloc blocks,
        first pfn, order, objects in use, objects in all). A new block must be one
        the page allocator could have handed out (free, aligned, lowmem RAM); a
        block that disappeared goes back to the free area.
        """
        seen: dict[int, tuple[int, int]] = {}
        usage: dict[int, tuple[int, int]] = {}
        for cid, pfn, order, inuse, total in reported:
            usage[pfn] = (inuse, total)
            what = f"the slab at pfn {pfn:#x} (order {order}, cache {cid})"
            if pfn in seen:
                raise failure_for("SLAB-INTROSPECT", f"{what} is reported twice")
            if cid and cid not in self.caches:
                raise failure_for("SLAB-INTROSPECT", f"{what} belongs to no live cache")
            if not 0 <= inuse <= total:
                raise failure_for("SLAB-INTROSPECT", f"{what} has {inuse} objects in use of {total}")
            seen[pfn] = (cid, order)
        for pfn, (cid, order) in self.slab_blocks.items():
            if seen.get(pfn) != (cid, order):
                for addr in list(self._debug_by_slab.pop(pfn, ())):
                    self._forget_free(addr)
            if seen.get(pfn, (None, None))[1] != order:
                self.pages.adopt_free(pfn, order)
        for pfn, (cid, order) in seen.items():
            if self.slab_blocks.get(pfn, (None, None))[1] == order:
                continue
            try:
                self.pages.check_alloc(0, order, pfn, logical=True)
            except ConformanceFailure as f:
                raise failure_for("SLAB-INTROSPECT", f"the slab layer reports holding the order-{order} block at pfn {pfn:#x}, "
                                                     f"which it cannot have taken from the page allocator: {f.message}") from None
            self.pages.adopt_alloc(_COMP, order, pfn, step)  # slab folios and large kmalloc blocks are compound
        self.slab_blocks = seen
        self.slab_usage = usage

    def slab_of(self, addr: int) -> int | None:
        """The first pfn of the reported slab block holding ``addr``, or None."""
        pfn = self.machine.virt_to_pfn(addr)
        blk = self.pages.live_block_at(pfn) if pfn is not None else None
        return blk.pfn if blk is not None and blk.pfn in self.slab_blocks else None

    def check_partial_first(self, cid: int, addr: int, before: dict[int, tuple[int, int, int, int]]) -> None:
        """SLAB-PARTIAL-FIRST (policy): a partial slab before an empty one, an empty one before a new slab.

        The removed SLAB allocator's order (mm/slab.c get_first_slab: slabs_partial,
        then slabs_free, then cache_grow); SLUB may take an empty slab from its
        partial list first, so the rule binds only implementations that claim it.
        """
        slab = self.slab_of(addr)
        mine = {pfn: (inuse, total) for pfn, (c, _, inuse, total) in before.items() if c == cid}
        partial = {pfn for pfn, (inuse, total) in mine.items() if 0 < inuse < total}
        empty = {pfn for pfn, (inuse, _) in mine.items() if inuse == 0}
        if partial and slab not in partial:
            where = "a new slab" if slab not in mine else f"the {'empty' if slab in empty else 'full'} slab at pfn {slab:#x}"
            raise failure_for("SLAB-PARTIAL-FIRST", f"kmem_cache_alloc on cache {cid} took {addr:#x} from {where} while the slab at pfn {min(partial):#x} was partial")
        if not partial and empty and slab not in empty:
            raise failure_for("SLAB-PARTIAL-FIRST", f"kmem_cache_alloc on cache {cid} took {addr:#x} from a new slab while the slab at pfn {min(empty):#x} was empty")

    def check_shrunk(self, cid: int) -> None:
        """SLAB-SHRINK-RELEASES (policy): after kmem_cache_shrink no empty slab of the cache remains (mm/slub.c __kmem_cache_do_shrink)."""
        for pfn, (c, order) in self.slab_blocks.items():
            if c == cid and self.slab_usage[pfn][0] == 0:
                raise failure_for("SLAB-SHRINK-RELEASES", f"after kmem_cache_shrink, cache {cid} still holds the empty order-{order} slab at pfn {pfn:#x}")

    # -- debug caches: poison and red zones -------------------------------------------------

    def expected_poison(self, cid: int | None, gfp: int) -> bytes | None:
        """SLAB-POISON: what a new object of cache ``cid`` reads, or None when the rule says nothing."""
        if cid is None or gfp & int(GFP.ZERO) or not self.caches[cid].poisoned:
            return None
        return object_poison(self.caches[cid].object_size)

    def note_free(self, obj: LiveObject) -> FreeObject | None:
        """After a free: keep a free object of a debug cache while its slab is shown (its poison and red zones stay checkable)."""
        if obj.cache is None or not self.exact:
            return None
        cache = self.caches[obj.cache]
        slab = self.slab_of(obj.addr)
        if not (cache.poisoned or cache.red_zoned) or slab is None or self.slab_blocks[slab][0] != obj.cache:
            return None
        f = FreeObject(obj.addr, cache.object_size, obj.cache, slab)
        self.debug_free[f.addr] = f
        bisect.insort(self._debug_starts, f.addr)
        self._debug_by_slab.setdefault(slab, set()).add(f.addr)
        self._debug_by_cache.setdefault(f.cache, set()).add(f.addr)
        return f

    def _forget_free(self, addr: int) -> None:
        f = self.debug_free.pop(addr)
        del self._debug_starts[bisect.bisect_left(self._debug_starts, addr)]
        self._debug_by_slab.get(f.slab, set()).discard(addr)
        self._debug_by_cache.get(f.cache, set()).discard(addr)

    def _forget_free_in(self, start: int, end: int) -> None:
        i = bisect.bisect_left(self._debug_starts, start)
        if i and self.debug_free[self._debug_starts[i - 1]].addr + self.debug_free[self._debug_starts[i - 1]].size > start:
            i -= 1
        while i < len(self._debug_starts) and self._debug_starts[i] < end:
            self._forget_free(self._debug_starts[i])

    def free_object_at(self, addr: int) -> FreeObject | None:
        """The tracked free debug object containing byte ``addr``, or None."""
        i = bisect.bisect_right(self._debug_starts, addr) - 1
        if i >= 0:
            f = self.debug_free[self._debug_starts[i]]
            if addr < f.addr + f.size:
                return f
        return None

    def clobber_sites(self, cid: int, claims: frozenset[str]) -> list[int]:
        """Bytes of cache ``cid`` whose overwrite the claimed checks must find: red zones next to objects, poison of free ones."""
        cache = self.caches[cid]
        free = [self.debug_free[a] for a in sorted(self._debug_by_cache.get(cid, ()))]
        sites: list[int] = []
        if "SLAB-REDZONE-CHECK" in claims and cache.red_zoned:
            sites += [s for addr in sorted(cache.live) if self._visited(addr, cache) for s in (addr - 1, addr + cache.object_size)]
            sites += [s for f in free for s in (f.addr - 1, f.addr + f.size)]
        if "SLAB-POISON-CHECK" in claims and cache.poisoned:
            sites += [s for f in free for s in (f.addr, f.addr + f.size // 2, f.addr + f.size - 1)]
        return sites

    def _visited(self, addr: int, cache: Cache) -> bool:
        """validate_slab_node walks partial slabs, and full ones only with SLAB_STORE_USER (mm/slub.c)."""
        if cache.flags & SlabFlag.STORE_USER:
            return True
        slab = self.slab_of(addr)
        return slab is not None and self.slab_usage[slab][0] < self.slab_usage[slab][1]

    def classify_clobber(self, addr: int, claims: frozenset[str]) -> Corruption:
        """Which debug area byte ``addr`` is in, among the checks claimed (SLAB-POISON-CHECK, SLAB-REDZONE-CHECK).

        A byte inside a tracked free object is its poison; else the byte just
        before or after an object is its red zone. Raises InvalidArgument for a
        byte no claimed check covers, and the red-zone rule's failure when the
        red zone the cache must keep there is missing.
        """
        free = self.free_object_at(addr)
        if free is not None and self.caches[free.cache].poisoned and "SLAB-POISON-CHECK" in claims:
            return Corruption(addr, free.addr, free.cache, "poison", "SLAB-POISON-CHECK")
        if "SLAB-REDZONE-CHECK" in claims:
            candidates: list[tuple[int, int, str, bool]] = []  # (object, cache, area, live)
            after = self.objects.get(addr + 1) or self.debug_free.get(addr + 1)
            if after is not None and after.cache is not None:
                candidates.append((after.addr, after.cache, "left red zone", addr + 1 in self.objects))
            before: LiveObject | FreeObject | None = self.object_at(addr - 1)
            if before is None or before.cache is None or addr != before.addr + self.caches[before.cache].object_size:
                before = self.free_object_at(addr - 1)
            if before is not None and before.cache is not None and addr == before.addr + self.caches[before.cache].object_size:
                candidates.append((before.addr, before.cache, "right red zone", before.addr in self.objects))
            for obj, cid, area, live in candidates:
                cache = self.caches[cid]
                if cache.red_zoned and (not live or self._visited(obj, cache)):
                    c = Corruption(addr, obj, cid, area, "SLAB-REDZONE-CHECK")
                    self._check_red_zone(c)
                    return c
        raise InvalidArgument(f"byte {addr:#x} is in no poison or red zone a claimed check covers (a free object of a SLAB_POISON cache: "
                              f"SLAB-POISON-CHECK; the byte before or after an object of a SLAB_RED_ZONE cache in a slab validate visits: "
                              f"SLAB-REDZONE-CHECK)")

    def _check_red_zone(self, c: Corruption) -> None:
        name = self.caches[c.cache].name
        other = self.object_at(c.addr) or self.free_object_at(c.addr)
        if other is not None:
            raise failure_for(c.rule_id, f"the {c.area} of the object at {c.obj:#x} ({name}, SLAB_RED_ZONE) is byte {c.addr:#x}, "
                                         f"but that byte belongs to {other.describe()}: the cache keeps no red zone there (mm/slub.c calculate_sizes)")
        slab = self.slab_of(c.obj)
        if slab is None or self.slab_of(c.addr) != slab:
            raise failure_for(c.rule_id, f"the {c.area} of the object at {c.obj:#x} ({name}, SLAB_RED_ZONE) is byte {c.addr:#x}, "
                                         f"outside the object's slab: SLUB keeps both red zones inside the object's slot")

    def expect_validate(self, cid: int) -> Expectation:
        """kmem_cache_validate: every overwritten poison or red zone byte is reported and restored (mm/slub.c validate_slab_cache)."""
        pending = self.corrupt.get(cid)
        cache = self.caches[cid]
        if not pending:
            return Expectation(Outcome.MUST_SUCCEED, "IUT-NO-FALSE-REPORT", f"{cache.name} is intact: it validates without a report")
        c = pending[0]
        return Expectation(Outcome.MUST_SUCCEED, c.rule_id, "", SlabCorruption, c.rule_id, fatal=False, misuse=f"{c.describe()} was overwritten")

    # -- page blocks of the slab layer given to free_pages ------------------------------------

    def large_object_at(self, pfn: int) -> LiveObject | None:
        """The live large kmalloc object whose block starts at ``pfn``, or None."""
        obj = self.objects.get(self.machine.page_offset + (pfn << self.machine.page_shift))
        if obj is None or obj.cache is not None or obj.alloc_size <= kmalloc_max_cache_size(self.machine):
            return None
        block = self.slab_blocks.get(pfn)
        if block != (0, get_order(obj.alloc_size, self.machine.page_shift)) or self.slab_usage.get(pfn) != (1, 1):
            return None  # served from a slab of several objects, not a block of its own
        return obj

    def expect_free_slab_block(self, pfn: int, order: int) -> Expectation | None:
        """free_pages(pfn, order) of a block the slab layer shows, or None when ``pfn`` heads no such block.

        A slab page is the kernel's "Bad page state" (its page type leaves
        _mapcount != -1; free_pages_prepare leaks the page). A large kmalloc
        block is a plain compound page in 6.12, freed without complaint; later
        kernels type it too, so a report is allowed and then nothing changes.
        """
        if not self.exact or pfn not in self.slab_blocks:
            return None
        cid, slab_order = self.slab_blocks[pfn]
        if self.large_object_at(pfn) is not None:
            if order != slab_order:
                return None  # a compound block freed with another order: the page oracle's BUDDY-FREE-WRONG-ORDER
            return Expectation(Outcome.MUST_SUCCEED, "SLAB-PAGE-BAD-FREE", f"free_pages of the large kmalloc block at pfn {pfn:#x} frees it (or is reported)",
                               also_report=(BadFree, InvalidFree))
        owner = f"cache {cid}" if cid else "a kmalloc cache"
        e = _slab_misuse(BadFree, "SLAB-PAGE-BAD-FREE", f"pfn {pfn:#x} heads an order-{slab_order} slab of {owner}; free_pages of a slab page "
                                                        f"(order {order}) is a Bad page state")
        return replace(e, also_report=(FreeWrongOrder,)) if order != slab_order else e

    # -- adopting ----------------------------------------------------------------------------

    def adopt_object(self, addr: int, size: int, gfp: int, step: int, *, cid: int | None = None) -> LiveObject:
        obj = LiveObject(addr, size, cid, gfp, step, alloc_size=size)
        self.objects[addr] = obj
        bisect.insort(self._starts, addr)
        self.freed.discard(addr)
        if self.debug_free:
            self._forget_free_in(addr, addr + max(size, 1))
        self.used = True
        if cid is not None:
            self.caches[cid].live.add(addr)
        return obj

    def adopt_free(self, addr: int) -> LiveObject:
        obj = self.objects.pop(addr)
        del self._starts[bisect.bisect_left(self._starts, addr)]
        self.freed.add(addr)
        if obj.cache is not None:
            self.caches[obj.cache].live.discard(addr)
        return obj

    def adopt_resize(self, addr: int, size: int) -> None:
        """krealloc in place: the object keeps its address, its size changes."""
        obj = self.objects[addr]
        obj.size, obj.span = size, 0

    def adopt_cache(self, cid: int, name: str, size: int, align: int, flags: int) -> Cache:
        cache = Cache(cid, name, size, calculate_alignment(flags, align, size), flags)
        self.caches[cid] = cache
        self.used = True
        return cache

    def adopt_destroy(self, cid: int) -> None:
        del self.caches[cid]
        self.corrupt.pop(cid, None)
        for addr in list(self._debug_by_cache.pop(cid, ())):
            self._forget_free(addr)


def _slab_misuse(kind: type[Violation], rule_id: str | None, reason: str) -> Expectation:
    return Expectation(Outcome.MUST_FAIL, rule_id or "undefined", reason, kind, rule_id, fatal=True, misuse=reason)


# -- the subsystems ---------------------------------------------------------------

KMALLOC_RULES: tuple[Rule, ...] = (
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
    Rule("KSIZE-COVERS", "kmalloc", Level.SAFETY, "ksize(p) is at least the size asked for, and the bytes up to it belong to p alone",
       "mm/slub.c __ksize / ksize; include/linux/slab.h kmalloc_size_roundup kernel-doc"),
    Rule("KMALLOC-SIZE-CLASS", "kmalloc", Level.POLICY, "ksize(kmalloc(size)) is the kernel's bucket: 8, 16, 32, 64, 96, 128, 192, 256 ... KMALLOC_MAX_CACHE_SIZE (2 * PAGE_SIZE), then PAGE_SIZE << get_order(size)",
       "mm/slab_common.c kmalloc_size_roundup, kmalloc_size_index[]; include/linux/slab.h __kmalloc_index"),
    Rule("KZALLOC-ZERO", "kmalloc", Level.SAFETY, "kzalloc, and kmalloc or kmem_cache_alloc with __GFP_ZERO, return an object that reads zero over the size asked for",
       "include/linux/slab.h kzalloc; mm/slub.c slab_post_alloc_hook (init), ___kmalloc_large_node (__GFP_ZERO to the page allocator)", capability="memory"),
    Rule("KREALLOC", "kmalloc", Level.SAFETY, "krealloc keeps the old contents up to the smaller size; krealloc(NULL, n) allocates; krealloc(p, 0) frees p and returns ZERO_SIZE_PTR; on failure p stays live",
       "mm/slab_common.c krealloc_noprof / __do_krealloc"),
    Rule("KMALLOC-GFP-BUG", "kmalloc", Level.DETECTION, "kmalloc with __GFP_HIGHMEM or __GFP_DMA32 reports UnexpectedGfp every time (unclaimed, the report is allowed, not required: the kernel warns only when it needs a new slab) and still returns lowmem",
       "mm/slab_common.c kmalloc_fix_flags (\"Unexpected gfp\"); mm/slub.c new_slab, ___kmalloc_large_node; mm/internal.h GFP_SLAB_BUG_MASK"),
)

KMALLOC_OPS = (
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

SLAB_RULES: tuple[Rule, ...] = (
    Rule("SLAB-LOWMEM", "slab", Level.SAFETY, "every object is a lowmem logical address inside free RAM (no hole, no reserved page), also when __GFP_HIGHMEM was asked",
       "mm/slub.c allocate_slab (slab_address of lowmem pages), kmalloc_fix_flags; mm/slab_common.c"),
    Rule("SLAB-ZONE-ELIGIBLE", "slab", Level.SAFETY, "an object of GFP_DMA kmalloc or of a SLAB_CACHE_DMA cache lies in ZONE_DMA (SLAB_CACHE_DMA32: ZONE_DMA32 or below)",
       "include/linux/slab.h kmalloc_type (KMALLOC_DMA); mm/slub.c calculate_sizes (s->allocflags)"),
    Rule("SLAB-CACHE-ALIGN", "slab", Level.SAFETY, "a kmem_cache_alloc object is aligned as calculate_alignment() says: the align asked for, SLAB_HWCACHE_ALIGN's cache line (halved while the object fits in half), at least 8",
       "mm/slab_common.c calculate_alignment; include/linux/slab.h ARCH_SLAB_MINALIGN", capability="slab"),
    Rule("SLAB-NO-OVERLAP", "slab", Level.SAFETY, "an object overlaps no live object and no live page block; a page block alloc_pages returns holds no live object",
       "mm/slub.c (an object is on the freelist or allocated, never both); mm/page_alloc.c"),
    Rule("SLAB-CONTENTS-INTACT", "slab", Level.SAFETY, "the slab layer never writes a live object: what the caller stored is there until it frees the object",
       "mm/slub.c (free pointers and poison are written only into free objects)", capability="memory"),
    Rule("SLAB-INTROSPECT", "slab", Level.SAFETY, "the slabs an implementation shows are page blocks it could take from free lowmem RAM, each reported once, and every object lies in a slab of its cache (a kmalloc cache or a large kmalloc block for kmalloc objects)",
       "mm/slub.c allocate_slab / discard_slab (slab pages come from and go back to the page allocator); /sys/kernel/slab/*/slabs", capability="slab_info"),
    Rule("SLAB-PARTIAL-FIRST", "slab", Level.POLICY, "kmem_cache_alloc takes an object from a partial slab if the cache has one, else from an empty slab if it has one, and only then from a new slab",
       "mm/slab.c get_first_slab / cache_grow (the removed SLAB allocator); SLUB (mm/slub.c ___slab_alloc) may take an empty slab first", capability="slab_info"),
    Rule("SLAB-SHRINK-RELEASES", "slab", Level.POLICY, "after kmem_cache_shrink the cache holds no empty slab: they went back to the page allocator",
       "mm/slub.c __kmem_cache_do_shrink (discard_slab of every empty slab, whatever min_partial says)", capability="slab_info"),
    Rule("SLAB-NO-SPURIOUS-FAIL", "slab", Level.LIVENESS, "with slabs() showing every slab page, kmalloc and kmem_cache_alloc (a cache without debug flags) do not return NULL when the page allocator must supply what a new slab takes (get_order of the object stride, the caller's reclaim flags) or a large kmalloc takes (get_order(size)), as BUDDY-NO-SPURIOUS-FAIL (where claimed) and NOFAIL-NEVER-NULL say",
       "mm/slub.c allocate_slab (fallback to oo_order(s->min)), new_slab (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK), ___kmalloc_large_node; mm/page_alloc.c get_page_from_freelist", claimable=True, capability="slab_info"),
    Rule("SLAB-POISON", "slab", Level.POLICY, "in a SLAB_POISON cache (not SLAB_TYPESAFE_BY_RCU) a new object without __GFP_ZERO, and a free object while its slab stays, read POISON_FREE (0x6b) bytes ending in POISON_END (0xa5) (no constructor, no KFENCE object, as slub_kunit arranges)",
       "mm/slub.c init_object (on free and again on alloc), calculate_sizes (__OBJECT_POISON; the free pointer moves out of the object); include/linux/poison.h; mm/slab.h slab_want_init_on_alloc", capability="memory"),
    Rule("SLAB-DOUBLE-FREE", "slab", Level.DETECTION, "kfree or kmem_cache_free of an object already freed reports DoubleFree (InvalidFree once its slab is gone) and changes nothing",
       "mm/slub.c free_consistency_checks (\"Object already free\", SLAB_CONSISTENCY_CHECKS)"),
    Rule("SLAB-INVALID-FREE", "slab", Level.DETECTION, "kfree of a pointer into a live object, or into a page block from the page allocator, reports InvalidFree and changes nothing",
       "mm/slub.c free_consistency_checks (\"Invalid object pointer\"), free_large_kmalloc (\"Not a kmalloc allocation\", mainline after 6.12)"),
    Rule("SLAB-WRONG-CACHE", "slab", Level.DETECTION, "kmem_cache_free(s, x) of an object of another cache reports WrongCache and changes nothing",
       "mm/slub.c cache_from_obj / warn_free_bad_obj (SLAB_FREELIST_HARDENED or SLAB_CONSISTENCY_CHECKS)", capability="slab"),
    Rule("SLAB-DESTROY-BUSY", "slab", Level.DETECTION, "kmem_cache_destroy of a cache with live objects reports CacheBusy; the cache and its objects stay intact",
       "mm/slub.c __kmem_cache_shutdown (\"Objects remaining\"); mm/slab_common.c kmem_cache_destroy (\"Slab cache still has objects\")", capability="slab"),
    Rule("SLAB-CACHE-MIGHT-SLEEP", "slab", Level.DETECTION, "kmem_cache_create, kmem_cache_destroy and kmem_cache_shrink in atomic context report SleepInAtomic (they take slab_mutex)",
       "mm/slab_common.c __kmem_cache_create_args, kmem_cache_destroy, kmem_cache_shrink (mutex_lock, cpus_read_lock)", capability="slab"),
    Rule("SLAB-POISON-CHECK", "slab", Level.DETECTION, "a byte overwritten in a free object of a SLAB_POISON cache is reported as SlabCorruption by the next kmem_cache_validate, which restores the poison (a second validate reports nothing; no KASAN or KFENCE object, as slub_kunit arranges)",
       "mm/slub.c validate_slab_cache / check_object (\"Poison overwritten\") / restore_bytes; lib/slub_kunit.c test_first_word, test_clobber_50th_byte", capability="slab_debug"),
    Rule("SLAB-REDZONE-CHECK", "slab", Level.DETECTION, "a byte overwritten just before or just after an object of a SLAB_RED_ZONE cache (its left or right red zone; a live object in a slab validate visits: not full, or SLAB_STORE_USER) is reported as SlabCorruption by kmem_cache_validate, which restores it (no KFENCE object, as slub_kunit arranges)",
       "mm/slub.c calculate_sizes (red_left_pad; right red zone 1..8 bytes), check_object (\"Left/Right Redzone overwritten\"), validate_slab_node (full slabs only with SLAB_STORE_USER); lib/slub_kunit.c test_clobber_zone, test_clobber_redzone_free", capability="slab_debug"),
    Rule("SLAB-PAGE-BAD-FREE", "slab", Level.DETECTION, "free_pages of a page block the slab layer holds as a slab reports BadFree (\"Bad page state\") and, by the suite's rule for a raised misuse, changes nothing (the kernel leaks the page); a large kmalloc block may be freed, or reported and kept",
       "mm/page_alloc.c free_pages_prepare / free_page_is_bad / page_bad_reason (\"nonzero mapcount\": PGTY_slab; check_pages_enabled); mm/slub.c free_large_kmalloc", capability="slab_info"),
)

SLAB_OPS = (
    op("kmem_cache_create", "slab", ("name", Kind.NAME), ("size", Kind.SIZE), ("align", Kind.SIZE), ("flags", Kind.SLAB_FLAGS),
       returns=Returns.CACHE, doc="kmem_cache_create(name, size, align, flags): a cache id (never 0), or NULL"),
    op("kmem_cache_alloc", "slab", ("cache", Kind.CACHE), ("gfp", Kind.GFP), returns=Returns.OBJECT, doc="kmem_cache_alloc(cache, gfp)"),
    op("kmem_cache_free", "slab", ("cache", Kind.CACHE), ("addr", Kind.OBJECT), doc="kmem_cache_free(cache, p)"),
    op("kmem_cache_destroy", "slab", ("cache", Kind.CACHE), doc="kmem_cache_destroy(cache); a busy cache is reported and stays"),
    op("kmem_cache_shrink", "slab", ("cache", Kind.CACHE), doc="kmem_cache_shrink(cache): give empty slabs back"),
    op("slabs", "slab_info", returns=Returns.SLAB_ROWS, step=False,
       doc="every slab page block as (cache, pfn, order, inuse, total); cache 0 for kmalloc's caches and large kmalloc blocks"),
    op("kmem_cache_validate", "slab_debug", ("cache", Kind.CACHE),
       doc="validate_slab_cache: report overwritten poison and red zones as SlabCorruption, and restore them"),
    op("clobber", "slab_debug", ("addr", Kind.OBJECT), wire=False,
       doc="overwrite one byte of a poison or red zone, as slub_kunit does"),
)

KMALLOC_SUBSYSTEM = Subsystem(
    "kmalloc", "kmalloc, kzalloc, kmalloc_array, krealloc, ksize, kfree (include/linux/slab.h, mm/slab_common.c)",
    capabilities=("kmalloc",), rules=KMALLOC_RULES, ops=KMALLOC_OPS, applies_to=frozenset({"kmalloc"}), depends=("pages",),
)

SLAB_SUBSYSTEM = Subsystem(
    "slab", "slab caches, their pages and SLUB debugging (mm/slub.c, mm/slab_common.c)",
    capabilities=("slab", "slab_info", "slab_debug"), rules=SLAB_RULES, ops=SLAB_OPS, applies_to=frozenset({"kmalloc", "slab"}),
    model=lambda machine, models: SlabModel(machine, models["pages"]), depends=("pages", "kmalloc"),
)
