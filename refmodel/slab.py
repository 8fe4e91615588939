"""The slab layer: caches, their objects, and the slabs that hold them.

Models ``mm/slab_common.c`` (kmem_cache_create/destroy/shrink, the alignment
rules) and ``mm/slub.c`` (SLUB, the only slab allocator since 6.8) as a caller
sees them: ``SlabLayer`` tracks every live object (kmem_cache and kmalloc
alike) by address beside the page oracle, says what a kmem_cache call may do,
and checks the object an implementation returned.

Invariants: live objects are disjoint and lie in lowmem RAM outside every
live page block the slab layer does not hold; objects are kept in address
order, so overlap queries cost O(log live objects). The model does not know
which pages the implementation's slabs hold unless it shows them (capability
``slab_info``, ``sync_slabs``); only then is page liveness exact. kmem_cache
calls that take slab_mutex may sleep (SLAB-CACHE-MIGHT-SLEEP).

Neighbours: kmalloc's size classes and its calls live in ``kmalloc``, SLUB
debugging (poison, red zones) in ``slab_debug``; ``objects`` composes the
three into the ``SlabModel`` the lockstep checker holds. Pages come from
``page_alloc``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Final, Protocol

from ._internal import IntervalIndex, misuse
from .context import Context, in_atomic
from .errors import (
    BadFree,
    CacheBusy,
    ConformanceFailure,
    DoubleFree,
    FreeWrongOrder,
    InvalidFree,
    SleepInAtomic,
    UnexpectedGfp,
    WrongCache,
    failure_for,
)
from .expectation import Expectation, Outcome
from .gfp import GFP_INT, format_gfp, gfpflags_allow_blocking, zonelist_eligible
from .machine import Machine
from .page_alloc import LiveBlock, PageAllocModel, get_order
from .rules import Level, Rule
from ._subsystem import Kind, Returns, op

OWNER: Final = "slab"
"""The page owner the slab layer's blocks carry in the page oracle (slabs and large kmalloc blocks)."""

ARCH_SLAB_MINALIGN: Final = 8
"""__alignof__(unsigned long long) (include/linux/slab.h)."""

CACHE_LINE_SIZE: Final = 64
"""cache_line_size() on x86_64 (L1_CACHE_BYTES, arch/x86/include/asm/cache.h)."""

GFP_SLAB_KEEP: Final = (GFP_INT.RECLAIM | GFP_INT.HIGH | GFP_INT.IO | GFP_INT.FS | GFP_INT.NOWARN | GFP_INT.RETRY_MAYFAIL | GFP_INT.NOFAIL
                         | GFP_INT.NORETRY | GFP_INT.MEMALLOC | GFP_INT.NOMEMALLOC | GFP_INT.HARDWALL | GFP_INT.THISNODE)
"""GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK: what new_slab passes on of the caller's flags (mm/internal.h; mm/slub.c new_slab)."""

GFP_SLAB_BUG_MASK: Final = GFP_INT.DMA32 | GFP_INT.HIGHMEM
"""__GFP_DMA32 | __GFP_HIGHMEM | ~__GFP_BITS_MASK (mm/internal.h); the last part holds no bit the model generates."""


def slab_gfp_bug(gfp: int) -> bool:
    """kmalloc_fix_flags' trigger: a zone bit the slab layer cannot honour (mm/slub.c new_slab, GFP_SLAB_BUG_MASK).

    new_slab applies it to every cache's allocation, kmalloc's and kmem_cache_alloc's alike.
    """
    return bool(gfp & GFP_SLAB_BUG_MASK)


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
    NO_MERGE = 0x1000000
    ACCOUNT = 0x4000000


SLAB_NEVER_MERGE: Final = SlabFlag.RED_ZONE | SlabFlag.POISON | SlabFlag.STORE_USER | SlabFlag.TYPESAFE_BY_RCU | SlabFlag.NO_MERGE
"""Flags that keep a cache from merging (mm/slab_common.c SLAB_NEVER_MERGE; its SLAB_TRACE, SLAB_NOLEAKTRACE and SLAB_FAILSLAB are not in the protocol)."""

SLAB_DEBUG_FLAGS: Final = SlabFlag.RED_ZONE | SlabFlag.POISON | SlabFlag.STORE_USER | SlabFlag.CONSISTENCY_CHECKS
"""Flags only a CONFIG_SLUB_DEBUG kernel keeps; without it kmem_cache_create masks them off (mm/slab.h
SLAB_DEBUG_FLAGS, CACHE_CREATE_MASK; mm/slab_common.c __kmem_cache_create_args), so such caches merge."""

SLAB_MERGE_SAME: Final = SlabFlag.RECLAIM_ACCOUNT | SlabFlag.CACHE_DMA | SlabFlag.CACHE_DMA32 | SlabFlag.ACCOUNT
"""Flags two caches must agree on to merge (mm/slab_common.c SLAB_MERGE_SAME)."""


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


def format_slab_flags(flags: int) -> str:
    """``SLAB_RED_ZONE|SLAB_POISON``, or 0."""
    names = [f"SLAB_{f.name}" for f in SlabFlag if f & flags]
    return "|".join(names) or "0"


def _align_up(n: int, a: int) -> int:
    return -(-n // a) * a


@dataclass
class Cache:
    """A kmem_cache as the model sees it: its geometry, its live objects, and the references kmem_cache_create gave out.

    ``refcount`` counts the creates merged into it (mm/slab_common.c
    __kmem_cache_alias); ``linked`` is False once the last reference was
    dropped while objects remained (kmem_cache_destroy unlinks it, list_del,
    and leaks it): it is then no merge target and takes no further destroy.
    """

    cid: int
    name: str
    object_size: int
    align: int
    flags: int
    live: set[int] = field(default_factory=set)
    refcount: int = 1
    linked: bool = True

    @property
    def poisoned(self) -> bool:
        """__OBJECT_POISON: SLAB_POISON without SLAB_TYPESAFE_BY_RCU (mm/slub.c calculate_sizes)."""
        return bool(self.flags & SlabFlag.POISON) and not self.flags & SlabFlag.TYPESAFE_BY_RCU

    @property
    def red_zoned(self) -> bool:
        return bool(self.flags & SlabFlag.RED_ZONE)

    @property
    def stores_user(self) -> bool:
        """SLAB_STORE_USER: SLUB then keeps full slabs on a list too, so validate walks them (mm/slub.c add_full)."""
        return bool(self.flags & SlabFlag.STORE_USER)

    @property
    def plain_stride(self) -> int | None:
        """s->size of a cache without debug flags or RCU: the object rounded up to a word, then to the alignment
        (mm/slub.c calculate_sizes; the free pointer lives inside the object). None for the others."""
        if self.flags & (SlabFlag.RED_ZONE | SlabFlag.POISON | SlabFlag.STORE_USER | SlabFlag.TYPESAFE_BY_RCU):
            return None
        return self.stride_bound

    @property
    def stride_bound(self) -> int:
        """The object rounded up to a word and to the alignment: s->size without debug flags, and no less than
        slab_ksize() with them (mm/slub.c calculate_sizes; mm/slab.h slab_ksize)."""
        return _align_up(_align_up(self.object_size, 8), self.align)

    def unmergeable(self, size: int, align: int, flags: int) -> str | None:
        """Why kmem_cache_create(size, align, flags) cannot be an alias of this cache, or None where it may be
        (mm/slab_common.c find_mergeable, slab_unmergeable; slab_nomerge and a ctor are outside the protocol)."""
        if flags & SLAB_NEVER_MERGE:
            return f"the request has {format_slab_flags(flags & SLAB_NEVER_MERGE)}, which never merges (SLAB_NEVER_MERGE)"
        if not self.linked:
            return f"cache {self.cid} ({self.name}) was destroyed with objects left: kmem_cache_destroy unlinked it from slab_caches"
        if self.flags & SLAB_NEVER_MERGE:
            return f"cache {self.cid} ({self.name}) has {format_slab_flags(self.flags & SLAB_NEVER_MERGE)}, which never merges (SLAB_NEVER_MERGE)"
        if (flags & SLAB_MERGE_SAME) != (self.flags & SLAB_MERGE_SAME):
            return (f"the request's SLAB_MERGE_SAME flags ({format_slab_flags(flags & SLAB_MERGE_SAME)}) differ from "
                    f"cache {self.cid}'s ({format_slab_flags(self.flags & SLAB_MERGE_SAME)})")
        words = _align_up(size, 8)
        want = calculate_alignment(flags, align, words)
        rounded = _align_up(words, want)
        stride = self.plain_stride
        assert stride is not None  # a cache without SLAB_NEVER_MERGE flags is plain
        if rounded > stride:
            return f"the request's {rounded}-byte objects do not fit cache {self.cid}'s {stride}-byte stride"
        if stride % want:
            return f"cache {self.cid}'s {stride}-byte stride is not a multiple of the request's {want}-byte alignment"
        if stride - rounded >= 8:
            return f"the request's {rounded}-byte objects would leave a word or more of cache {self.cid}'s {stride}-byte stride unused"
        return None

    def merge(self, name: str, size: int, align: int, flags: int) -> None:
        """Take an alias: one more reference; the object grows to the larger size (mm/slab_common.c __kmem_cache_alias).

        Every object then meets both creators' alignment: the stride is a
        multiple of both, and slabs start on a page.
        """
        self.refcount += 1
        self.object_size = max(self.object_size, size)
        self.align = max(self.align, calculate_alignment(flags, align, _align_up(size, 8)))

    @property
    def zone_gfp(self) -> int:
        """s->allocflags' zone bits: SLAB_CACHE_DMA adds GFP_DMA, SLAB_CACHE_DMA32 GFP_DMA32 (mm/slub.c calculate_sizes)."""
        if self.flags & SlabFlag.CACHE_DMA:
            return GFP_INT.DMA
        if self.flags & SlabFlag.CACHE_DMA32:
            return GFP_INT.DMA32
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


class SlabListener(Protocol):
    """What a layer over the slab layer (SLUB debugging, ``slab_debug``) hears of changes to what it tracks."""

    def object_placed(self, start: int, end: int) -> None:
        """An object now lives in [start, end)."""

    def slab_changed(self, pfn: int) -> None:
        """The slab block at ``pfn`` went away or changed cache or order."""

    def cache_destroyed(self, cid: int) -> None:
        """Cache ``cid`` is gone."""


class SlabLayer:
    """The slab layer's oracle for one machine, beside the page oracle.

    It tracks live objects by address and checks what an implementation
    returns against the kernel's rules; it does not know which pages the
    implementation's slabs hold, so it never predicts success of a small
    allocation except under SLAB-NO-SPURIOUS-FAIL's claim. Objects are kept
    in address order: overlap queries cost O(log live objects).
    """

    def __init__(self, machine: Machine, pages: PageAllocModel, *, exact: bool = False, page_liveness: frozenset[str] = frozenset()) -> None:
        """``exact``: the implementation shows its slabs (capability slab_info), so page liveness stays exact.
        ``page_liveness``: the page rules that bind the implementation; a slab allocation must succeed only where one
        of them says its pages must. BUDDY-NO-SPURIOUS-FAIL is in it only where SLAB-NO-SPURIOUS-FAIL is claimed;
        NOFAIL-NEVER-NULL, which binds everyone, holds a blocking __GFP_NOFAIL object allocation to its pages."""
        self.machine, self.pages = machine, pages
        self.exact, self.page_liveness = exact, page_liveness
        self.caches: dict[int, Cache] = {}
        self.objects: IntervalIndex[LiveObject] = IntervalIndex(attrgetter("end"))
        self.freed: set[int] = set()  # addresses freed and not handed out again
        self.slab_blocks: dict[int, tuple[int, int]] = {}  # first pfn -> (cache id or 0, order) of every reported slab block
        self.slab_usage: dict[int, tuple[int, int]] = {}  # first pfn -> (objects in use, objects in all), as last reported
        self.listeners: list[SlabListener] = []

    def _taking_pages(self) -> None:
        # Without slabs() the pages this layer now holds are invisible: the page model's liveness degrades.
        if not self.exact:
            self.pages.hide(OWNER)

    @property
    def opaque(self) -> bool:
        """Pages may be held by slabs the model cannot see."""
        return OWNER in self.pages.hidden

    # -- queries -------------------------------------------------------------------

    def object_at(self, addr: int) -> LiveObject | None:
        """The live object containing byte ``addr``, or None."""
        return self.objects.containing(addr)

    def overlapping(self, start: int, end: int, *, ignore: int | None = None) -> LiveObject | None:
        """The highest live object other than ``ignore`` overlapping [start, end), or None (objects are disjoint)."""
        return self.objects.last_overlapping(start, end, ignore=ignore)

    def liveness_judged(self, gfp: int) -> bool:
        """Whether an allocation with ``gfp`` may be required to succeed: every slab page is visible (exact), and
        SLAB-NO-SPURIOUS-FAIL is claimed or ``gfp`` is a blocking __GFP_NOFAIL (NOFAIL-NEVER-NULL binds everyone)."""
        if not self.exact or not self.page_liveness:
            return False
        return "BUDDY-NO-SPURIOUS-FAIL" in self.page_liveness or bool(gfp & GFP_INT.NOFAIL and gfpflags_allow_blocking(gfp))

    def slab_of(self, addr: int) -> int | None:
        """The first pfn of the reported slab block holding ``addr``, or None."""
        pfn = self.machine.virt_to_pfn(addr)
        blk = self.pages.live_block_at(pfn) if pfn is not None else None
        return blk.pfn if blk is not None and blk.pfn in self.slab_blocks else None

    # -- expectations ------------------------------------------------------------------

    def expect_cache_alloc(self, cid: int, gfp: int, ctx: Context) -> Expectation:
        """What kmem_cache_alloc(cache, gfp) may do (mm/slub.c slab_alloc_node); the cache's own zone is no misuse."""
        cache = self.caches[cid]
        stride = cache.plain_stride if self.liveness_judged(gfp) else None
        need = None if stride is None else (get_order(stride, self.machine.page_shift), (gfp & GFP_SLAB_KEEP) | cache.zone_gfp | GFP_INT.COMP,
                                            f"a new slab of {stride}-byte objects")
        return self.expect_object(cache.object_size, gfp, ctx, need)

    def expect_object(self, nbytes: int, gfp: int, ctx: Context, need: tuple[int, int, str] | None = None) -> Expectation:
        """What an allocation of an ``nbytes`` object may do (mm/slub.c slab_alloc_node), kmalloc's or a cache's.

        ``need`` is (order, gfp, what) of the page block a new slab (or a large
        kmalloc) takes, where the model can judge it: then SLAB-NO-SPURIOUS-FAIL
        holds the allocation to what the page allocator must supply.
        """
        # Success is required only where the model sees every slab page (slab_info) and the page
        # allocator must supply what a new slab or a large kmalloc takes (SLAB-NO-SPURIOUS-FAIL, claimed).
        outcome = Expectation(Outcome.MAY_FAIL, "SLAB-NO-OVERLAP", f"an object of {nbytes} bytes needs room in a slab the model cannot see")
        if need is not None:
            order, page_gfp, what = need
            pages = self.pages.expect_alloc(page_gfp, order, logical=True)
            if pages.outcome is Outcome.MUST_SUCCEED and pages.rule_id in self.page_liveness:
                # mm/slub.c allocate_slab: after the preferred order, s->min with the caller's flags, __GFP_NOFAIL kept.
                rule_id = "NOFAIL-NEVER-NULL" if pages.rule_id == "NOFAIL-NEVER-NULL" else "SLAB-NO-SPURIOUS-FAIL"
                outcome = Expectation(Outcome.MUST_SUCCEED, rule_id,
                                      f"{what} takes an order-{order} block ({format_gfp(page_gfp)}) and {pages.reason}", hint=pages.hint)
        if gfpflags_allow_blocking(gfp) and in_atomic(ctx):
            also = (UnexpectedGfp,) if slab_gfp_bug(gfp) else ()
            return replace(outcome, report=SleepInAtomic, report_rule="CTX-MIGHT-SLEEP", also_report=also,
                           misuse=f"{format_gfp(gfp)} may block, but the caller runs in {ctx.name.lower()} context")
        if slab_gfp_bug(gfp):
            return replace(outcome, report=UnexpectedGfp, report_rule="KMALLOC-GFP-BUG",
                           misuse=f"{format_gfp(gfp)} has {format_gfp(gfp & GFP_SLAB_BUG_MASK)}, which the slab layer cannot honour (GFP_SLAB_BUG_MASK)")
        return outcome

    def expect_object_free(self, addr: int, *, cid: int | None) -> Expectation:
        """Whether kfree(addr) (``cid`` None) or kmem_cache_free(cache cid, addr) is valid, or the misuse it is.

        kfree's NULL and ZERO_SIZE_PTR are ``kmalloc``'s; this is the slab layer's part.
        """
        fn = "kfree" if cid is None else "kmem_cache_free"
        obj = self.objects.get(addr)
        if obj is not None:
            if cid is not None and obj.cache != cid:
                owner = "kmalloc" if obj.cache is None else f"cache {obj.cache}"
                e = misuse(WrongCache, "SLAB-WRONG-CACHE", f"kmem_cache_free(cache {cid}, {addr:#x}): the object belongs to {owner}")
                # A large kmalloc has no slab: cache_from_obj finds "not a Slab page".
                return replace(e, also_report=(InvalidFree,)) if obj.cache is None else e
            return Expectation(Outcome.MUST_SUCCEED, "SLAB-NO-OVERLAP", f"{fn} of a live object")
        inner = self.object_at(addr)
        if inner is not None:
            return misuse(InvalidFree, "SLAB-INVALID-FREE", f"{fn}({addr:#x}) points {addr - inner.addr} bytes into {inner.describe()}")
        pfn = self.machine.virt_to_pfn(addr)
        blk = self.pages.live_block_at(pfn) if pfn is not None else None
        if blk is not None and blk.pfn not in self.slab_blocks:
            # Checked before "already free": the page allocator may have handed a freed object's pages out since.
            return misuse(InvalidFree, "SLAB-INVALID-FREE", f"{fn}({addr:#x}) is inside the order-{blk.order} page block at pfn {blk.pfn:#x}, not a slab object")
        if addr in self.freed:
            # SLUB finds "Object already free" while the slab lives; once its pages went
            # back to the buddy allocator kfree sees no slab ("Not a kmalloc allocation").
            # If another cache's slab has taken the pages since, kmem_cache_free finds a WrongCache.
            also = (InvalidFree,) if cid is None else (InvalidFree, WrongCache)
            return replace(misuse(DoubleFree, "SLAB-DOUBLE-FREE", f"{fn}({addr:#x}): the object is already free"), also_report=also)
        return misuse(InvalidFree, None, f"{fn}({addr:#x}) was never returned by the slab layer")

    def expect_cache_destroy(self, cid: int, ctx: Context) -> Expectation:
        """kmem_cache_destroy: sleeps (slab_mutex); live objects are reported and stay (mm/slab_common.c)."""
        cache = self.caches[cid]
        if cache.refcount > 1:
            base = Expectation(Outcome.MUST_SUCCEED, "SLAB-CACHE-MERGE", f"cache {cid} has {cache.refcount} references: destroy drops one, and nothing else")
        elif cache.live:
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

    def check_alias(self, cid: int, size: int, align: int, flags: int, what: str) -> None:
        """SLAB-CACHE-MERGE: kmem_cache_create returned live cache ``cid``, which it may only if the request merges into it."""
        why = self.caches[cid].unmergeable(size, align, flags)
        if why is not None:
            raise failure_for("SLAB-CACHE-MERGE", f"{what} returned cache {cid}, a live cache it cannot merge with: {why}; return a new cache id")

    def _may_sleep(self, base: Expectation, fn: str, ctx: Context) -> Expectation:
        """SLAB-CACHE-MIGHT-SLEEP: mutex_lock's might_sleep splat in atomic context; the call then goes on.

        A call that is a misuse of its own (a busy cache destroyed) makes that
        report too, after the splat (mm/slab_common.c kmem_cache_destroy: its
        RCU barrier, cpus_read_lock and slab_mutex sleep, then shutdown_cache
        fails and WARNs): both are required, each where its rule is claimed.
        """
        if not in_atomic(ctx):
            return base
        if base.report is not None:
            return replace(base, beside=(*base.beside, (SleepInAtomic, "SLAB-CACHE-MIGHT-SLEEP")),
                           misuse=f"{base.misuse}, in {ctx.name.lower()} context where {fn} sleeps")
        return replace(base, report=SleepInAtomic, report_rule="SLAB-CACHE-MIGHT-SLEEP", fatal=False,
                       misuse=f"{fn} in {ctx.name.lower()} context: it takes slab_mutex and may sleep")

    def expect_free_slab_block(self, pfn: int, order: int) -> Expectation | None:
        """SLAB-PAGE-BAD-FREE: free_pages(pfn, order) of a slab the slab layer shows, or None when ``pfn`` heads no slab.

        A slab page is the kernel's "Bad page state" (its page type leaves
        _mapcount != -1; free_pages_prepare leaks the page). A large kmalloc
        block (``kmalloc``) is asked about before this.
        """
        if not self.exact or pfn not in self.slab_blocks:
            return None
        cid, slab_order = self.slab_blocks[pfn]
        owner = f"cache {cid}" if cid else "a kmalloc cache"
        e = misuse(BadFree, "SLAB-PAGE-BAD-FREE", f"pfn {pfn:#x} heads an order-{slab_order} slab of {owner}; free_pages of a slab page "
                                                        f"(order {order}) is a Bad page state")
        return replace(e, also_report=(FreeWrongOrder,)) if order != slab_order else e

    # -- checks ----------------------------------------------------------------------------

    def check_object(self, addr: int, size: int, gfp: int, *, align: int, align_rule: str, what: str, cid: int | None = None) -> None:
        """Raise the failure of the first rule a returned object breaks: lowmem RAM, zone, alignment, overlap, the slab's pages."""
        first, last = self._check_lowmem(addr, size, what)
        self._check_zone_eligible(addr, gfp, first, last, what)
        if addr % align:  # align_rule: KMALLOC-ALIGN (kmalloc_min_align) or SLAB-CACHE-ALIGN (calculate_alignment)
            raise failure_for(align_rule, f"{what} returned {addr:#x}, which is not {align}-byte aligned ({addr:#x} % {align} = {addr % align})")
        self.check_free_of_objects(addr, addr + size, what)
        self._check_slab_pages(addr, first, last, what, cid)

    def _check_lowmem(self, addr: int, size: int, what: str) -> tuple[int, int]:
        """SLAB-LOWMEM: the object is a lowmem logical address in usable RAM; its first and last pfn."""
        m = self.machine
        first = m.virt_to_pfn(addr)
        last = m.virt_to_pfn(addr + max(size, 1) - 1)
        if first is None or last is None or not m.is_lowmem(last):
            raise failure_for("SLAB-LOWMEM", f"{what} returned {addr:#x}, which is not a lowmem logical address for {size} bytes (PAGE_OFFSET {m.page_offset:#x}, max_low_pfn {m.max_low_pfn:#x})")
        if not m.is_usable_block(first, last - first + 1):
            raise failure_for("SLAB-LOWMEM", f"{what} returned {addr:#x}: pfn {first:#x}..{last:#x} is not all free RAM (a hole or a reserved range)")
        return first, last

    def _check_zone_eligible(self, addr: int, gfp: int, first: int, last: int, what: str) -> None:
        """SLAB-ZONE-ELIGIBLE: the object's pages are in a zone its gfp allows, without the bits new_slab drops (GFP_SLAB_BUG_MASK)."""
        m = self.machine
        high = self.pages.highest_zoneidx(gfp & ~GFP_SLAB_BUG_MASK)
        for pfn in (first, last):
            zone = m.zone_of_pfn(pfn)
            assert zone is not None
            if not zonelist_eligible(zone.zone_type, high):
                raise failure_for("SLAB-ZONE-ELIGIBLE", f"{what} returned {addr:#x} in ZONE_{zone.zone_type.name}, but {format_gfp(gfp & ~GFP_SLAB_BUG_MASK)} allows only ZONE_{high.name} and below")

    def _check_slab_pages(self, addr: int, first: int, last: int, what: str, cid: int | None) -> None:
        """SLAB-NO-OVERLAP with page blocks, and SLAB-INTROSPECT: each page of the object is a slab page, page by page.

        A page in a live block the slab layer does not hold overlaps it; where
        the slabs are shown, a page must be in one of them, of this cache or a kmalloc one.
        """
        for pfn in range(first, last + 1):
            blk = self.pages.live_block_at(pfn)
            if blk is not None and blk.pfn not in self.slab_blocks:
                raise failure_for("SLAB-NO-OVERLAP", f"{what} returned {addr:#x}, inside the live order-{blk.order} page block at pfn {blk.pfn:#x} (step {blk.step})")
            if self.exact and (blk is None or (cid is not None and self.slab_blocks[blk.pfn][0] not in (cid, 0))):
                where = "no block the slab layer reports holding" if blk is None else f"the slab at pfn {blk.pfn:#x} of cache {self.slab_blocks[blk.pfn][0]}"
                raise failure_for("SLAB-INTROSPECT", f"{what} returned {addr:#x}, in pfn {pfn:#x}: {where}{self._merge_hint(cid, blk)}")

    def _merge_hint(self, cid: int | None, blk: LiveBlock | None) -> str:
        """Where two caches share slabs and could have merged: how the protocol says so."""
        other = self.caches.get(self.slab_blocks[blk.pfn][0]) if blk is not None else None
        mine = self.caches.get(cid) if cid is not None else None
        if other is None or mine is None or other.unmergeable(mine.object_size, mine.align, mine.flags) is not None:
            return ""
        return (f"; each slab has one cache (slab->slab_cache): to merge the two as SLUB does, "
                f"kmem_cache_create must return cache {other.cid}'s id again (an alias)")

    def check_free_of_objects(self, start: int, end: int, what: str, *, ignore: int | None = None) -> None:
        """SLAB-NO-OVERLAP: [start, end) overlaps no live object (but ``ignore``)."""
        other = self.overlapping(start, end, ignore=ignore)
        if other is not None:
            raise failure_for("SLAB-NO-OVERLAP", f"{what}: [{start:#x}, {end:#x}) overlaps {other.describe()}")

    def check_page_block(self, pfn: int, order: int) -> None:
        """A block alloc_pages returned holds no live object (SLAB-NO-OVERLAP)."""
        start = self.machine.pfn_to_virt(pfn)
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
                for listener in self.listeners:
                    listener.slab_changed(pfn)
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
            self.pages.adopt_alloc(GFP_INT.COMP, order, pfn, step, owner=OWNER)  # slab folios and large kmalloc blocks are compound
        self.slab_blocks = seen
        self.slab_usage = usage

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

    # -- adopting ----------------------------------------------------------------------------

    def adopt_object(self, addr: int, size: int, gfp: int, step: int, *, cid: int | None = None) -> LiveObject:
        obj = LiveObject(addr, size, cid, gfp, step, alloc_size=size)
        self.objects[addr] = obj
        self.freed.discard(addr)
        for listener in self.listeners:
            listener.object_placed(addr, addr + max(size, 1))
        self._taking_pages()
        if cid is not None:
            self.caches[cid].live.add(addr)
        return obj

    def adopt_free(self, addr: int) -> LiveObject:
        obj = self.objects.pop(addr)
        self.freed.add(addr)
        if obj.cache is not None:
            self.caches[obj.cache].live.discard(addr)
        return obj

    def adopt_cache(self, cid: int, name: str, size: int, align: int, flags: int) -> Cache:
        cache = Cache(cid, name, size, calculate_alignment(flags, align, size), flags)
        self.caches[cid] = cache
        self._taking_pages()
        return cache

    def adopt_alias(self, cid: int, name: str, size: int, align: int, flags: int) -> Cache:
        cache = self.caches[cid]
        cache.merge(name, size, align, flags)
        return cache

    def adopt_destroy(self, cid: int) -> None:
        """kmem_cache_destroy: drop a reference; at the last, a cache with objects stays, unlinked (mm/slab_common.c)."""
        cache = self.caches[cid]
        cache.refcount -= 1
        if cache.refcount:
            return
        if cache.live:
            cache.linked = False
            return
        del self.caches[cid]
        for listener in self.listeners:
            listener.cache_destroyed(cid)


# -- the subsystem (with SLUB debugging's rules and steps, objects.SUBSYSTEM) ----------

RULES: tuple[Rule, ...] = (
    Rule("SLAB-LOWMEM", "slab", Level.SAFETY, "every object is a lowmem logical address inside free RAM (no hole, no reserved page), also when __GFP_HIGHMEM was asked",
       "mm/slub.c allocate_slab (slab_address of lowmem pages), kmalloc_fix_flags; mm/slab_common.c"),
    Rule("SLAB-ZONE-ELIGIBLE", "slab", Level.SAFETY, "an object of GFP_DMA kmalloc or of a SLAB_CACHE_DMA cache lies in ZONE_DMA (SLAB_CACHE_DMA32: ZONE_DMA32 or below)",
       "include/linux/slab.h kmalloc_type (KMALLOC_DMA); mm/slub.c calculate_sizes (s->allocflags)"),
    Rule("SLAB-CACHE-ALIGN", "slab", Level.SAFETY, "a kmem_cache_alloc object is aligned as calculate_alignment() says: the align asked for, SLAB_HWCACHE_ALIGN's cache line (halved while the object fits in half), at least 8",
       "mm/slab_common.c calculate_alignment; include/linux/slab.h ARCH_SLAB_MINALIGN", capability="slab"),
    Rule("SLAB-CACHE-MERGE", "slab", Level.SAFETY, "kmem_cache_create returns a new cache, or a live cache it may merge with (an alias, as SLUB merges by default): neither has a SLAB_NEVER_MERGE flag, their SLAB_MERGE_SAME flags agree, and the live cache's stride is a multiple of the request's alignment and holds its word-rounded size with less than a word to spare; kmem_cache_destroy of an alias drops one reference and nothing else",
       "mm/slab_common.c find_mergeable, slab_unmergeable, __kmem_cache_alias, kmem_cache_destroy (s->refcount)", capability="slab"),
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
    Rule("SLAB-PAGE-BAD-FREE", "slab", Level.DETECTION, "free_pages of a page block the slab layer holds as a slab reports BadFree (\"Bad page state\") and, by the suite's rule for a raised misuse, changes nothing (the kernel leaks the page); a large kmalloc block may be freed, or reported and kept",
       "mm/page_alloc.c free_pages_prepare / free_page_is_bad / page_bad_reason (\"nonzero mapcount\": PGTY_slab; check_pages_enabled); mm/slub.c free_large_kmalloc", capability="slab_info"),
)

OPS = (
    op("kmem_cache_create", "slab", ("name", Kind.NAME), ("size", Kind.SIZE), ("align", Kind.SIZE), ("flags", Kind.SLAB_FLAGS),
       returns=Returns.CACHE, doc="kmem_cache_create(name, size, align, flags): a cache id (never 0), or NULL"),
    op("kmem_cache_alloc", "slab", ("cache", Kind.CACHE), ("gfp", Kind.GFP), returns=Returns.OBJECT, doc="kmem_cache_alloc(cache, gfp)"),
    op("kmem_cache_free", "slab", ("cache", Kind.CACHE), ("addr", Kind.OBJECT), doc="kmem_cache_free(cache, p)"),
    op("kmem_cache_destroy", "slab", ("cache", Kind.CACHE), doc="kmem_cache_destroy(cache); a busy cache is reported and stays"),
    op("kmem_cache_shrink", "slab", ("cache", Kind.CACHE), doc="kmem_cache_shrink(cache): give empty slabs back"),
    op("slabs", "slab_info", returns=Returns.SLAB_ROWS, step=False,
       doc="every slab page block as (cache, pfn, order, inuse, total); cache 0 for kmalloc's caches and large kmalloc blocks"),
)
