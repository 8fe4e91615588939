"""The buddy page allocator oracle: what alloc_pages, __get_free_pages and free_pages may do.

Models ``mm/page_alloc.c`` as seen by a caller. The oracle never predicts
which block comes back: ``expect_alloc`` says whether the call must succeed,
may fail, must fail or must report a misuse; ``check_alloc`` checks the block
an implementation returned against the safety rules, one small check per
rule; ``adopt_alloc`` then takes that block, so model and implementation
stay in step.

Invariants: free memory is kept as its canonical buddy decomposition, the
maximal aligned free blocks of each zone by order (what ``__free_one_page``
merging yields); a live block is aligned to its order, inside one zone, in
usable RAM, and overlaps no other; live blocks are indexed by first PFN.
Every operation costs O(MAX_PAGE_ORDER + log(live blocks)); nothing scans
pages or PFN ranges. A logical-address call (__get_free_pages) drops
__GFP_HIGHMEM once, where it enters the oracle, as the kernel does before
alloc_pages sees the mask. Blocking requests in atomic context are a
might_sleep splat (CTX-MIGHT-SLEEP).

Neighbours: zones and RAM are ``machine``'s, the watermark arithmetic
``watermarks``', GFP zone selection ``gfp``'s. Note that kmalloc and the
slab layer live in ``kmalloc`` and ``slab``, beside this oracle.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from operator import attrgetter
from typing import Iterable

from ._internal import IntervalIndex, misuse
from .context import Context, in_atomic
from .errors import (
    BadAddress,
    BadFree,
    DoubleFree,
    FreeInterior,
    FreeWrongOrder,
    InvalidGfp,
    SleepInAtomic,
    failure_for,
)
from .expectation import Expectation, Outcome
from .gfp import GFP_INT, ZoneType, format_gfp, gfp_zone, gfp_zone_bad, gfpflags_allow_blocking, zonelist_eligible
from ._free_area import FreeArea, coalesce
from .machine import Machine, Zone, split_aligned, split_aligned_runs  # noqa: F401  (split_aligned: importable here, as before)
from .rules import Level, Rule
from .watermarks import may_ignore_min, min_watermark, watermark_free_ok
from ._subsystem import Kind, Returns, Subsystem, op


@dataclass(frozen=True)
class LiveBlock:
    """An allocated block: first PFN, order, the flags it was asked with, its zone, the step that made it, its owner.

    ``owner`` is who holds it, as mm/page_owner.c would say: ``"caller"`` for a
    block alloc_pages handed to the caller, or the name of the layer that took
    it (``"slab"`` for slabs and large kmalloc blocks; vmalloc, DMA and page
    tables later). free_pages of an owned block is that layer's to judge.
    """

    pfn: int
    order: int
    gfp: int
    zone: ZoneType
    step: int
    owner: str = "caller"

    @property
    def end_pfn(self) -> int:
        return self.pfn + (1 << self.order)


def alloc_mask(gfp: int, logical: bool) -> int:
    """The mask alloc_pages sees: __get_free_pages (``logical``) passes gfp_mask & ~__GFP_HIGHMEM (mm/page_alloc.c)."""
    return gfp & ~GFP_INT.HIGHMEM if logical else gfp


def _pages(n: int) -> str:
    return "1 page is" if n == 1 else f"{n} pages are"


def get_order(size: int, page_shift: int) -> int:
    """get_order(): the smallest order whose block holds ``size`` bytes (include/asm-generic/getorder.h)."""
    pages = (size - 1) >> page_shift
    return pages.bit_length()


_OK_FREE = Expectation(Outcome.MUST_SUCCEED, "BUDDY-NO-OVERLAP", "a live block freed with its own order")


class PageAllocModel:
    """The buddy oracle for one machine. Start state: every usable page free, in maximal aligned blocks."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.max_order = machine.max_page_order
        self._zones: dict[ZoneType, Zone] = {z.zone_type: z for z in machine.populated_zones}
        self.live: IntervalIndex[LiveBlock] = IntervalIndex(attrgetter("end_pfn"))
        boot_area, boot_free = _boot_free_area(machine)
        self.free_area: dict[ZoneType, FreeArea] = {t: area.copy() for t, area in boot_area.items()}
        self.nr_free = dict(boot_free)
        self.hidden: set[str] = set()  # owners holding pages the model cannot see (``hide``)

    # -- queries ---------------------------------------------------------------

    def free_block_containing(self, zone: ZoneType, pfn: int, order: int) -> tuple[int, int] | None:
        """The canonical free block holding all of [pfn, pfn + 2^order), as (start, order), or None."""
        area = self.free_area.get(zone)
        if area is None:
            return None
        for k in range(order, self.max_order + 1):
            start = pfn & ~((1 << k) - 1)
            if area.contains(start, k):
                return start, k
        return None

    def live_block_at(self, pfn: int) -> LiveBlock | None:
        """The live block containing ``pfn``, or None."""
        return self.live.containing(pfn)

    def live_overlapping(self, pfn: int, nr_pages: int) -> LiveBlock | None:
        """The lowest live block overlapping [pfn, pfn + nr_pages), or None."""
        return self.live.first_overlapping(pfn, pfn + nr_pages)

    def highest_zoneidx(self, gfp: int) -> ZoneType:
        return gfp_zone(gfp, self.machine.configured_zones)

    def eligible_zones(self, gfp: int) -> list[ZoneType]:
        """The zonelist for ``gfp``: populated zones at or below gfp_zone(), highest first (fact ZONE-FALLBACK)."""
        high = self.highest_zoneidx(gfp)
        return sorted((t for t in self._zones if zonelist_eligible(t, high)), reverse=True)

    def has_free_block(self, zone: ZoneType, order: int) -> bool:
        """free_area[order..MAX_PAGE_ORDER] of ``zone`` is not all empty."""
        return self.free_area[zone].has(order)

    def watermark_ok(self, zone: ZoneType, order: int, highest: ZoneType) -> bool:
        """Fact WMARK-OK with ALLOC_WMARK_LOW, as the fast path asks (mm/page_alloc.c __zone_watermark_ok).

        free - (2^order - 1) > low + lowmem_reserve[highest_zoneidx], and for
        order > 0 some free_area[order..MAX] non-empty.
        """
        z = self._zones[zone]
        if not watermark_free_ok(self.nr_free[zone], order, z.watermark.low, z.lowmem_reserve[highest]):
            return False
        return self.has_free_block(zone, order)

    def _free_block(self, zone: ZoneType, order: int) -> str:
        """A free block of ``zone`` of at least ``order``, for a liveness failure's message (a scan: run only on failure)."""
        area = self.free_area[zone]
        k, pfn = next(((k, p) for k in range(order, self.max_order + 1) if (p := area.first(k)) is not None), (None, None))
        if k is None or pfn is None:
            return ""
        return f"pfn {pfn:#x}-{pfn + (1 << k) - 1:#x} (an order-{k} block of ZONE_{zone.name}) is free in the model"

    def min_watermark_ok(self, zone: ZoneType, order: int, highest: ZoneType, gfp: int) -> bool:
        """Fact WMARK-OK with the slow path's first retry (mm/page_alloc.c __alloc_pages_slowpath, rule BUDDY-NO-SPURIOUS-FAIL).

        After the fast path fails at the low mark, the slow path retries
        get_page_from_freelist at ALLOC_WMARK_MIN with gfp_to_alloc_flags'
        ALLOC_MIN_RESERVE / ALLOC_NON_BLOCK before any reclaim, for every mask.
        """
        z = self._zones[zone]
        if not watermark_free_ok(self.nr_free[zone], order, min_watermark(z.watermark.min, gfp), z.lowmem_reserve[highest]):
            return False
        return self.has_free_block(zone, order)

    # -- alloc -----------------------------------------------------------------

    def expect_alloc(self, gfp: int, order: int, ctx: Context = Context.PROCESS, *, logical: bool = False) -> Expectation:
        """What alloc_pages(gfp, order) (or __get_free_pages with ``logical``) may do in ``ctx``."""
        gfp = alloc_mask(gfp, logical)
        base = self._expect_placement(gfp, order, logical)
        if self.hidden and base.outcome is Outcome.MUST_SUCCEED:
            # A layer holds pages the model cannot see: success is no longer provable.
            base = Expectation(Outcome.MAY_FAIL, base.rule_id, base.reason)
        if order > self.max_order or order < 0:
            return base  # __alloc_pages returns NULL before gfp_zone() and might_alloc() run
        if gfp_zone_bad(gfp):
            # Without DEBUG_VM the bad slot reads as zone 0 and the call goes on (fact GFP-ZONE-BAD-NODEBUG).
            return Expectation(base.outcome, base.rule_id, base.reason, InvalidGfp, "GFP-ZONE-BAD", fatal=True,
                               misuse=f"{format_gfp(gfp)} sets more than one of __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM", hint=base.hint)
        if gfpflags_allow_blocking(gfp) and in_atomic(ctx):
            return Expectation(base.outcome, base.rule_id, base.reason, SleepInAtomic, "CTX-MIGHT-SLEEP", fatal=False,
                               misuse=f"{format_gfp(gfp)} may block, but the caller runs in {ctx.name.lower()} context (preempt_count {ctx.preempt_count:#x})",
                               hint=base.hint)
        return base

    def _expect_placement(self, gfp: int, order: int, logical: bool) -> Expectation:
        """Whether a block can and must come back: BUDDY-ORDER-LIMIT, NOFAIL-NEVER-NULL, BUDDY-NO-SPURIOUS-FAIL (``gfp`` as alloc_pages sees it)."""
        if order > self.max_order or order < 0:
            return Expectation(Outcome.MUST_FAIL, "BUDDY-ORDER-LIMIT", f"order {order} is outside 0..MAX_PAGE_ORDER {self.max_order}")
        high = self.highest_zoneidx(gfp)
        zones = [t for t in self.eligible_zones(gfp) if not logical or self._zone_is_lowmem(t)]
        candidates = [t for t in zones if self.has_free_block(t, order)]
        if not candidates:
            where = ", ".join(f"ZONE_{t.name}" for t in zones) or "no populated zone"
            return Expectation(Outcome.MUST_FAIL, "BUDDY-NO-OVERLAP", f"no free order-{order} block in {where}")
        if gfp & GFP_INT.NOFAIL and gfpflags_allow_blocking(gfp):
            # Checked first: NOFAIL-NEVER-NULL binds every implementation, above the watermarks too.
            return Expectation(Outcome.MUST_SUCCEED, "NOFAIL-NEVER-NULL",
                               f"__GFP_NOFAIL never returns NULL and ZONE_{candidates[0].name} has a free order-{order} block",
                               hint=functools.partial(self._free_block, candidates[0], order))
        ok = [t for t in candidates if self.watermark_ok(t, order, high)]
        if ok:
            return Expectation(Outcome.MUST_SUCCEED, "BUDDY-NO-SPURIOUS-FAIL",
                               f"ZONE_{ok[0].name} has a free order-{order} block above its low watermark",
                               hint=functools.partial(self._free_block, ok[0], order))
        floor = [t for t in candidates if self.min_watermark_ok(t, order, high, gfp)]
        if floor:
            return Expectation(Outcome.MUST_SUCCEED, "BUDDY-NO-SPURIOUS-FAIL",
                               f"ZONE_{floor[0].name} has a free order-{order} block above its min watermark as {format_gfp(gfp)} "
                               "lowers it, and the slow path retries there before anything else",
                               hint=functools.partial(self._free_block, floor[0], order))
        if gfp & GFP_INT.MEMALLOC and not gfp & GFP_INT.NOMEMALLOC:
            return Expectation(Outcome.MUST_SUCCEED, "BUDDY-NO-SPURIOUS-FAIL",
                               f"__GFP_MEMALLOC ignores watermarks and ZONE_{candidates[0].name} has a free order-{order} block",
                               hint=functools.partial(self._free_block, candidates[0], order))
        return Expectation(Outcome.MAY_FAIL, "BUDDY-NO-SPURIOUS-FAIL",
                           f"every eligible zone with a free order-{order} block is at or below its low watermark")

    def _zone_is_lowmem(self, zone: ZoneType) -> bool:
        return self._zones[zone].end_pfn <= self.machine.max_low_pfn

    def check_alloc(self, gfp: int, order: int, pfn: int, *, logical: bool = False) -> None:
        """Raise the ConformanceFailure of the first safety rule the returned block breaks, in this order."""
        what = f"order-{order} block at pfn {pfn:#x}"
        self._check_order_limit(gfp, order, pfn)
        self._check_align(order, pfn, what)
        zone = self._check_in_zones(order, pfn, what)
        if logical:
            self._check_lowmem_address(order, pfn, what)
        self._check_zone_eligible(gfp, alloc_mask(gfp, logical), zone, what)
        self._check_usable(order, pfn, what)
        self._check_free(zone, order, pfn, what)

    def _check_order_limit(self, gfp: int, order: int, pfn: int) -> None:
        """BUDDY-ORDER-LIMIT: an order outside 0..MAX_PAGE_ORDER returns NULL."""
        if not 0 <= order <= self.max_order:
            raise failure_for("BUDDY-ORDER-LIMIT", f"alloc_pages({format_gfp(gfp)}, order={order}) returned pfn {pfn:#x}; orders outside 0..MAX_PAGE_ORDER {self.max_order} must return NULL")

    def _check_align(self, order: int, pfn: int, what: str) -> None:
        """BUDDY-ALIGN: an order-k block starts at a multiple of 2^k pages."""
        if pfn & ((1 << order) - 1):
            raise failure_for("BUDDY-ALIGN", f"{what} is not aligned to {1 << order} pages (pfn % {1 << order} = {pfn % (1 << order)})")

    def _check_in_zones(self, order: int, pfn: int, what: str) -> Zone:
        """PAGE-RAM-ONLY (inside RAM and its zones) and BUDDY-NO-CROSS-ZONE (inside one zone): the block's zone."""
        m = self.machine
        end = pfn + (1 << order)
        if pfn < 0 or end > m.max_pfn:
            raise failure_for("PAGE-RAM-ONLY", f"{what} ends at pfn {end:#x}, beyond the end of RAM (max_pfn {m.max_pfn:#x})")
        first, last = m.zone_of_pfn(pfn), m.zone_of_pfn(end - 1)
        if first is not None and last is not None and first is not last:
            raise failure_for("BUDDY-NO-CROSS-ZONE", f"{what} spans ZONE_{first.zone_type.name} and ZONE_{last.zone_type.name} (boundary pfn {first.end_pfn:#x})")
        if first is None or last is None:
            bad = pfn if first is None else end - 1
            raise failure_for("PAGE-RAM-ONLY", f"{what} covers pfn {bad:#x}, which lies in no zone")
        return first

    def _check_lowmem_address(self, order: int, pfn: int, what: str) -> None:
        """API-LOWMEM-ADDRESS: __get_free_pages returns lowmem, which has a logical address."""
        m = self.machine
        if not m.is_lowmem(pfn + (1 << order) - 1):
            raise failure_for("API-LOWMEM-ADDRESS", f"__get_free_pages returned {what}, which is highmem (max_low_pfn {m.max_low_pfn:#x}) and has no logical address")

    def _check_zone_eligible(self, gfp: int, mask: int, zone: Zone, what: str) -> None:
        """GFP-ZONE-ELIGIBLE: the block's zone is gfp_zone(mask) or below (``gfp`` as the caller gave it, for the message)."""
        high = self.highest_zoneidx(mask)
        if not zonelist_eligible(zone.zone_type, high):
            raise failure_for("GFP-ZONE-ELIGIBLE", f"{what} is in ZONE_{zone.zone_type.name}, but {format_gfp(gfp)} allows only ZONE_{high.name} and below")

    def _check_usable(self, order: int, pfn: int, what: str) -> None:
        """PAGE-RAM-ONLY: every page is RAM handed to the buddy allocator, not a hole or reserved."""
        m = self.machine
        if not m.is_usable_block(pfn, 1 << order):
            r = m.usable_range_of(pfn)
            bad = pfn if r is None else r.end
            kind = "reserved" if m.is_ram(bad) else "a hole"
            raise failure_for("PAGE-RAM-ONLY", f"{what} covers pfn {bad:#x}, which is {kind}, not free RAM")

    def _check_free(self, zone: Zone, order: int, pfn: int, what: str) -> None:
        """BUDDY-NO-OVERLAP: the block was free; it overlaps no live block."""
        if self.free_block_containing(zone.zone_type, pfn, order) is None:
            blk = self.live_overlapping(pfn, 1 << order)
            if blk is not None:
                raise failure_for("BUDDY-NO-OVERLAP", f"{what} overlaps the live order-{blk.order} block at pfn {blk.pfn:#x} allocated at step {blk.step}")
            raise failure_for("BUDDY-NO-OVERLAP", f"{what} is not free")  # unreachable while the model is consistent

    def check_reserves(self, gfp: int, order: int, pfn: int, *, logical: bool = False) -> None:
        """WMARK-RESERVES-KEPT (policy): the block at ``pfn`` was taken without breaking the reduced min watermark.

        mm/page_alloc.c __zone_watermark_ok with the slow path's flags
        (gfp_to_alloc_flags): ALLOC_MIN_RESERVE (= __GFP_HIGH) halves min,
        ALLOC_NON_BLOCK (no direct reclaim, no __GFP_NOMEMALLOC) then takes
        a quarter more; __GFP_MEMALLOC and a blocking __GFP_NOFAIL may use the reserves.
        """
        gfp = alloc_mask(gfp, logical)
        if may_ignore_min(gfp):
            return
        zone = self.machine.zone_of_pfn(pfn)
        assert zone is not None
        wmin = min_watermark(zone.watermark.min, gfp)
        reserve = zone.lowmem_reserve[self.highest_zoneidx(gfp)]
        if not watermark_free_ok(self.nr_free[zone.zone_type], order, wmin, reserve):
            raise failure_for("WMARK-RESERVES-KEPT", f"{format_gfp(gfp)} took an order-{order} block from ZONE_{zone.zone_type.name} with "
                                                     f"{self.nr_free[zone.zone_type]} pages free; it may go no lower than min {wmin} + lowmem_reserve {reserve}")

    def adopt_alloc(self, gfp: int, order: int, pfn: int, step: int = 0, owner: str = "caller") -> LiveBlock:
        """Take the (checked) block [pfn, pfn + 2^order) out of the free area: split the holding block (expand())."""
        zone = self.machine.zone_of_pfn(pfn)
        assert zone is not None
        found = self.free_block_containing(zone.zone_type, pfn, order)
        assert found is not None, "adopt_alloc of a block check_alloc would reject"
        start, k = found
        area = self.free_area[zone.zone_type]
        area.discard(start, k)
        while k > order:
            k -= 1
            half = 1 << k
            if pfn >= start + half:
                area.add(start, k)
                start += half
            else:
                area.add(start + half, k)
        self.nr_free[zone.zone_type] -= 1 << order
        blk = LiveBlock(pfn, order, gfp, zone.zone_type, step, owner)
        self.live[pfn] = blk
        return blk

    # -- owners that hide their pages ----------------------------------------------

    def hide(self, owner: str) -> None:
        """``owner`` now holds pages the model cannot see (a slab layer without slabs()): liveness degrades."""
        self.hidden.add(owner)

    @property
    def opaque(self) -> bool:
        """Some layer holds pages the model cannot see: no allocation is provably satisfiable, and the
        free area compares one way only (DESIGN.md "Composition: the model sees every page")."""
        return bool(self.hidden)

    # -- free ------------------------------------------------------------------

    def expect_free(self, pfn: int, order: int) -> Expectation:
        """Whether free_pages(pfn, order) is valid, or which misuse it is (reports are fatal: VM_BUG_ON).

        A misuse the kernel does not check (a wrong order on a non-compound
        block, a PFN with no struct page) has ``report_rule`` None: undefined.
        """
        m = self.machine
        blk = self.live_block_at(pfn)
        if blk is not None:
            if blk.pfn == pfn and blk.order == order:
                return _OK_FREE
            if blk.pfn == pfn:
                reason = f"pfn {pfn:#x} heads a live order-{blk.order} block, freed as order {order}"
                if blk.gfp & GFP_INT.COMP and blk.order > 0:
                    return misuse(FreeWrongOrder, "BUDDY-FREE-WRONG-ORDER", reason)
                return misuse(FreeWrongOrder, None, reason + " (not compound: __free_pages does not check the order)")
            return misuse(FreeInterior, "BUDDY-FREE-INTERIOR",
                           f"pfn {pfn:#x} is inside the live order-{blk.order} block at pfn {blk.pfn:#x}")
        if pfn < 0 or not m.pfn_valid(pfn):
            return misuse(BadFree, None, f"pfn {pfn:#x} has no struct page (pfn_valid() is false)")
        if m.usable_range_of(pfn) is None:
            kind = "reserved" if m.is_ram(pfn) else "a hole"
            return misuse(BadFree, "BUDDY-BAD-FREE", f"pfn {pfn:#x} is {kind}; it was never handed to the buddy allocator")
        return misuse(DoubleFree, "BUDDY-DOUBLE-FREE", f"pfn {pfn:#x} is already free")

    def adopt_free(self, pfn: int, order: int) -> None:
        """Return a live block to the free area, merging with free buddies in the same zone (__free_one_page)."""
        blk = self.live.pop(pfn)
        area = self.free_area[blk.zone]
        self.nr_free[blk.zone] += 1 << order
        while order < self.max_order:
            buddy = pfn ^ (1 << order)
            if not area.contains(buddy, order):
                break
            area.discard(buddy, order)
            pfn &= buddy
            order += 1
        area.add(pfn, order)

    def expect_free_addr(self, addr: int, order: int) -> tuple[Expectation, int | None]:
        """free_pages(addr, order): 0 is a no-op; a non-lowmem address is BadAddress; else as free_pages(virt_to_pfn(addr))."""
        if addr == 0:
            return Expectation(Outcome.MUST_SUCCEED, "API-FREE-ADDR-NULL", "free_pages(0) does nothing", noop=True), None
        # virt_to_page() rounds down: an address inside the page frees that page.
        pfn = self.machine.virt_to_pfn(addr)
        if pfn is None:
            return misuse(BadAddress, "API-FREE-BAD-ADDRESS", f"{addr:#x} fails virt_addr_valid() (below PAGE_OFFSET, or no struct page behind it)"), None
        return self.expect_free(pfn, order), pfn

    # -- canonical view --------------------------------------------------------

    def free_blocks(self) -> dict[ZoneType, set[tuple[int, int]]]:
        """The canonical free area: (pfn, order) of each maximal aligned free block, per zone (O(memory): for small machines)."""
        return {t: {(pfn + (i << k), k) for pfn, k, n in area.rows() for i in range(n)} for t, area in self.free_area.items()}

    def free_rows(self) -> list[tuple[int, int, int]]:
        """The canonical free area as (pfn, order, count) rows, untouched top-order blocks as one row per run: O(touched)."""
        return [row for area in self.free_area.values() for row in area.rows()]

    def check_zone_free(self, zone: ZoneType, reported: int, near: int | None = None) -> None:
        """INTROSPECT-ZONE-FREE: ``reported`` is the number of free pages of ``zone`` (mm/page_alloc.c account_freepages, rule INTROSPECT-ZONE-FREE).

        ``near`` is the PFN the last step freed or took: the message names the model's free block around it.
        """
        want = self.nr_free[zone]
        if reported == want:
            return
        where = f"zone_free_pages(ZONE_{zone.name}) is {reported}, but the zone has {want} free pages"
        if reported > want:
            raise failure_for("INTROSPECT-ZONE-FREE", f"{where}: {_pages(reported - want)} counted free that are allocated or are not RAM of the zone")
        around = self.free_block_containing(zone, near, 0) if near is not None else None
        if around is not None:
            start, k = around
            held = f"the step's pages are in pfn {start:#x}-{start + (1 << k) - 1:#x}, an order-{k} block free in the model"
        else:
            held = self._free_block(zone, 0)
        raise failure_for("INTROSPECT-ZONE-FREE", f"{where}: {_pages(want - reported)} lost (a leak)" + (f"; {held}" if held else ""))

    def check_free_area(self, reported: Iterable[tuple[int, ...]], *, exact: bool = True) -> None:
        """INTROSPECT-FREE-AREA: ``reported`` (pfn, order) or (pfn, order, count) rows, merged, equal the model's canonical free area.

        A row is ``count`` consecutive blocks of ``order`` from ``pfn``; top-order
        rows are compared as intervals, so an untouched zone costs O(rows) on both
        sides. Not ``exact`` (pages held by a layer the model cannot see, such as
        slabs without introspection): every reported block must lie in the model's free area.
        """
        merged, top_runs = self._merge_reported(reported)
        if not exact:
            self._check_reported_free(merged, top_runs)
            return
        top = self.max_order
        for t, area in self.free_area.items():
            for k in range(top):
                if merged[t][k] != area.blocks[k]:
                    extra = sorted(merged[t][k] - area.blocks[k])
                    missing = sorted(area.blocks[k] - merged[t][k])
                    self._free_area_differs(t, k, extra[0] if extra else None, missing[0] if missing else None)
            got = coalesce(sorted([(p, p + (1 << top)) for p in merged[t][top]] + top_runs[t]))
            want = area.top_intervals()
            if got != want:
                extra, missing = _first_difference(got, want, 1 << top)
                self._free_area_differs(t, top, extra, missing)

    def _merge_reported(self, reported: Iterable[tuple[int, ...]]) -> tuple[dict[ZoneType, list[set[int]]], dict[ZoneType, list[tuple[int, int]]]]:
        """Reported rows checked (aligned, in one zone, disjoint) and merged with their buddies, as __free_one_page would."""
        m, top = self.machine, self.max_order
        merged: dict[ZoneType, list[set[int]]] = {t: [set() for _ in range(m.nr_page_orders)] for t in self._zones}
        runs: dict[ZoneType, list[tuple[int, int]]] = {t: [] for t in self._zones}
        small: list[tuple[int, int]] = []
        for row in reported:
            pfn, order, count = row if len(row) == 3 else (*row, 1)
            what = f"reported free order-{order} block at pfn {pfn:#x}" + (f" (a row of {count})" if count != 1 else "")
            if not 0 <= order <= top or pfn & ((1 << order) - 1) or count < 1:
                raise failure_for("INTROSPECT-FREE-AREA", f"{what} is not an aligned block of order 0..{top} (count >= 1)")
            end = pfn + (count << order)
            zone = m.zone_of_pfn(pfn)
            if zone is None or m.zone_of_pfn(end - 1) is not zone:
                raise failure_for("INTROSPECT-FREE-AREA", f"{what} is not inside one zone")
            if order == top:
                runs[zone.zone_type].append((pfn, end))
            else:
                small.extend((pfn + (i << order), order) for i in range(count))
        for t, rs in runs.items():
            rs.sort()
            for (_, e1), (s2, _) in zip(rs, rs[1:]):
                if s2 < e1:
                    raise failure_for("INTROSPECT-FREE-AREA", f"reported free order-{top} block at pfn {s2:#x} overlaps another reported free block")
        for pfn, order in small:
            t = m.zone_of_pfn(pfn).zone_type  # type: ignore[union-attr]  (checked above)
            area = merged[t]
            for k in range(order, top + 1):
                if pfn & ~((1 << k) - 1) in area[k] or (k == top and _in_intervals(runs[t], pfn)):
                    raise failure_for("INTROSPECT-FREE-AREA", f"reported free order-{order} block at pfn {pfn:#x} overlaps another reported free block")
            while order < top and (pfn ^ (1 << order)) in area[order]:
                area[order].discard(pfn ^ (1 << order))
                pfn &= ~(1 << order)
                order += 1
            area[order].add(pfn)
        return merged, runs

    def _check_reported_free(self, merged: dict[ZoneType, list[set[int]]], runs: dict[ZoneType, list[tuple[int, int]]]) -> None:
        """Not exact: each reported block lies in the model's free area."""
        top = self.max_order
        for t, area in merged.items():
            model_top = self.free_area[t].top_intervals()
            blocks = [(pfn, k, 1) for k, starts in enumerate(area) for pfn in starts] + [(s, top, (e - s) >> top) for s, e in runs[t]]
            for pfn, k, n in blocks:
                inside = (_covered(model_top, pfn, pfn + (n << k)) if k == top
                          else self.free_block_containing(t, pfn, k) is not None)
                if not inside:
                    blk = self.live_overlapping(pfn, n << k)
                    held = f"the live order-{blk.order} block at pfn {blk.pfn:#x}" if blk else "allocated memory"
                    raise failure_for("INTROSPECT-FREE-AREA", f"ZONE_{t.name}: the implementation reports the order-{k} block at pfn {pfn:#x} free, but it overlaps {held}")

    @staticmethod
    def _free_area_differs(t: ZoneType, k: int, extra: int | None, missing: int | None) -> None:
        detail = (f"reports free order-{k} block at pfn {extra:#x} the model does not have" if extra is not None
                  else f"does not report the free order-{k} block at pfn {missing:#x}")
        raise failure_for("INTROSPECT-FREE-AREA", f"ZONE_{t.name}: the implementation {detail} (after merging buddies)")


def _in_intervals(intervals: list[tuple[int, int]], pfn: int) -> bool:
    i = bisect.bisect_right(intervals, (pfn, 1 << 62)) - 1
    return i >= 0 and intervals[i][0] <= pfn < intervals[i][1]


def _covered(intervals: list[tuple[int, int]], start: int, end: int) -> bool:
    """[start, end) lies inside one of the sorted, coalesced ``intervals``."""
    i = bisect.bisect_right(intervals, (start, 1 << 62)) - 1
    return i >= 0 and intervals[i][0] <= start and end <= intervals[i][1]


def _first_difference(got: list[tuple[int, int]], want: list[tuple[int, int]], step: int) -> tuple[int | None, int | None]:
    """The lowest block in ``got`` and not ``want`` (extra) or the reverse (missing): both coalesced interval lists."""
    for g, w in zip(got, want):
        if g != w:
            if g[0] != w[0]:
                return (g[0], None) if g[0] < w[0] else (None, w[0])
            return (w[1], None) if g[1] > w[1] else (None, g[1])
    if len(got) > len(want):
        return got[len(want)][0], None
    return None, want[len(got)][0]


@functools.lru_cache(maxsize=8)
def _boot_free_area(machine: Machine) -> tuple[dict[ZoneType, FreeArea], dict[ZoneType, int]]:
    """The free area right after boot (fact HOLE-BOOT-HANDOVER), computed once per machine and copied per model.

    The top-order blocks in the middle of each range stay one run: O(ranges), whatever the memory size.
    """
    area: dict[ZoneType, FreeArea] = {}
    free: dict[ZoneType, int] = {}
    top = machine.max_page_order
    for zone in machine.populated_zones:
        blocks: list[set[int]] = [set() for _ in range(machine.nr_page_orders)]
        runs: list[tuple[int, int]] = []
        free[zone.zone_type] = 0
        for r in machine.zone_free_ranges(zone):
            for pfn, order, count in split_aligned_runs(r, top):
                if count == 1:
                    blocks[order].add(pfn)
                else:
                    runs.append((pfn, pfn + (count << order)))
                free[zone.zone_type] += count << order
        area[zone.zone_type] = FreeArea(top, blocks, runs)
    return area, free


# -- the subsystem ----------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule("BUDDY-ORDER-LIMIT", "pages", Level.SAFETY, "alloc_pages with order > MAX_PAGE_ORDER returns NULL, even with __GFP_NOFAIL",
       "mm/page_alloc.c __alloc_frozen_pages_noprof (WARN_ON_ONCE_GFP, then NULL)"),
    Rule("BUDDY-ALIGN", "pages", Level.SAFETY, "a block of order k starts at a PFN that is a multiple of 2^k",
       "mm/page_alloc.c __free_one_page / expand; VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))"),
    Rule("PAGE-RAM-ONLY", "pages", Level.SAFETY, "every page of a returned block is RAM handed to the buddy allocator: no hole, no reserved page, nothing beyond memory",
       "mm/memblock.c memblock_free_all / free_low_memory_core_early; mm/page_alloc.c __free_pages_core"),
    Rule("BUDDY-NO-CROSS-ZONE", "pages", Level.SAFETY, "a block lies within one zone; buddies merge only within a zone",
       "mm/internal.h page_is_buddy (page_zone_id match); include/linux/mmzone.h zone_spans_pfn"),
    Rule("GFP-ZONE-ELIGIBLE", "pages", Level.SAFETY, "a block comes from the zone gfp_zone() selects or a lower one, never a higher one",
       "include/linux/gfp.h gfp_zone / GFP_ZONE_TABLE; mm/page_alloc.c get_page_from_freelist; include/linux/mmzone.h next_zones_zonelist"),
    Rule("BUDDY-NO-OVERLAP", "pages", Level.SAFETY, "a returned block is free: it overlaps no live allocation",
       "mm/page_alloc.c __rmqueue_smallest / expand (only PageBuddy blocks are handed out)"),
    Rule("API-LOWMEM-ADDRESS", "pages", Level.SAFETY, "__get_free_pages returns the logical address page_address() of a lowmem block, never a highmem one (__GFP_HIGHMEM is stripped)",
       "mm/page_alloc.c get_free_pages_noprof; include/linux/mm.h lowmem_page_address", capability="get_free_pages"),
    Rule("API-FREE-ADDR-NULL", "pages", Level.SAFETY, "free_pages(0, order) does nothing",
       "mm/page_alloc.c free_pages (if (addr != 0))", capability="get_free_pages"),
    Rule("API-ZERO", "pages", Level.SAFETY, "a block allocated with __GFP_ZERO reads back as zero",
       "mm/page_alloc.c post_alloc_hook / kernel_init_pages; include/linux/mm.h want_init_on_alloc", capability="memory"),
    Rule("PAGE-CONTENTS-INTACT", "pages", Level.SAFETY, "the allocator never writes a live block: what the caller stored is there until it frees the block",
       "mm/page_alloc.c (only free pages are written: init_on_free, poisoning, free-list links)", capability="memory"),
    Rule("INTROSPECT-FREE-AREA", "pages", Level.SAFETY, "the free blocks an implementation reports are aligned, disjoint, and cover exactly the free pages",
       "mm/page_alloc.c free_area[] / __free_one_page (every free page is in exactly one PageBuddy block)", capability="free_area"),
    Rule("INTROSPECT-ZONE-FREE", "pages", Level.SAFETY, "zone_free_pages(zone), the count /proc/zoneinfo shows as nr_free_pages, is the number of free pages of the zone after every step",
       "mm/page_alloc.c account_freepages (NR_FREE_PAGES moves with every block put on or taken off a free list); mm/vmstat.c zoneinfo_show_print", capability="zone_free_pages"),
    Rule("BUDDY-NO-SPURIOUS-FAIL", "pages", Level.LIVENESS, "with every free page in the buddy lists (no per-CPU lists, high-atomic reserve or watermark boost held back), alloc_pages does not return NULL when an eligible zone has a free block of the order above its min watermark plus lowmem_reserve (min halved for __GFP_HIGH, a further quarter off when the flags cannot block), or when __GFP_MEMALLOC lifts the watermarks",
       "mm/page_alloc.c get_page_from_freelist / __zone_watermark_ok (ALLOC_WMARK_LOW fast path), __alloc_pages_slowpath (its first retry at ALLOC_WMARK_MIN with gfp_to_alloc_flags), __gfp_pfmemalloc_flags", claimable=True),
    Rule("NOFAIL-NEVER-NULL", "pages", Level.LIVENESS, "a blocking __GFP_NOFAIL allocation of order <= MAX_PAGE_ORDER does not return NULL while an eligible block is free (the kernel retries for ever; a model allocator must reach into its reserves)",
       "mm/page_alloc.c __alloc_pages_slowpath (nopage: retry for ever), __alloc_pages_may_oom (ALLOC_NO_WATERMARKS fallback)"),
    Rule("WMARK-RESERVES-KEPT", "pages", Level.POLICY, "an allocation without __GFP_MEMALLOC or a blocking __GFP_NOFAIL takes a block from zone z only while free - (2^order - 1) > min + lowmem_reserve[gfp_zone], min halved for __GFP_HIGH and cut by a further quarter when the flags cannot block",
       "mm/page_alloc.c __zone_watermark_ok (ALLOC_MIN_RESERVE, ALLOC_NON_BLOCK), gfp_to_alloc_flags, setup_per_zone_lowmem_reserve, __alloc_pages_slowpath (nopage: no reserve for a NOFAIL that cannot reclaim)"),
    Rule("GFP-ZONE-BAD", "pages", Level.DETECTION, "a GFP mask with more than one of __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM reports InvalidGfp",
       "include/linux/gfp.h gfp_zone (GFP_ZONE_BAD, VM_BUG_ON under DEBUG_VM)"),
    Rule("BUDDY-DOUBLE-FREE", "pages", Level.DETECTION, "freeing pages that are already free reports DoubleFree and changes nothing",
       "include/linux/mm.h put_page_testzero (VM_BUG_ON_PAGE refcount == 0, DEBUG_VM)"),
    Rule("BUDDY-BAD-FREE", "pages", Level.DETECTION, "freeing a reserved PFN, or a hole PFN that has a struct page, reports BadFree and changes nothing",
       "mm/page_alloc.c free_pages_prepare / free_page_is_bad / bad_page (\"PAGE_FLAGS_CHECK_AT_FREE flag(s) set\", check_pages_enabled)"),
    Rule("BUDDY-FREE-WRONG-ORDER", "pages", Level.DETECTION, "freeing a live compound (__GFP_COMP) block with another order than it was allocated with reports FreeWrongOrder and changes nothing (for a non-compound block the kernel does not check: undefined)",
       "mm/page_alloc.c free_pages_prepare (VM_BUG_ON_PAGE(compound && compound_order(page) != order))"),
    Rule("BUDDY-FREE-INTERIOR", "pages", Level.DETECTION, "freeing a PFN inside a live block that is not its first page reports FreeInterior and changes nothing",
       "include/linux/mm.h put_page_testzero (VM_BUG_ON_PAGE: a tail page has refcount 0)"),
    Rule("API-FREE-BAD-ADDRESS", "pages", Level.DETECTION, "free_pages of an address for which virt_addr_valid() fails (below PAGE_OFFSET, or no struct page behind it) reports BadAddress and changes nothing",
       "mm/page_alloc.c free_pages (VM_BUG_ON(!virt_addr_valid(addr))); arch/x86/mm/physaddr.c __virt_addr_valid", capability="get_free_pages"),
)

OPS = (
    op("alloc_pages", "pages", ("gfp", Kind.GFP), ("order", Kind.ORDER), returns=Returns.PFN,
       doc="alloc_pages(gfp, order): the first PFN of a 2^order block, or NULL"),
    op("free_pages", "pages", ("pfn", Kind.PFN), ("order", Kind.ORDER),
       doc="__free_pages(pfn_to_page(pfn), order)"),
    op("get_free_pages", "get_free_pages", ("gfp", Kind.GFP), ("order", Kind.ORDER), returns=Returns.ADDR,
       doc="__get_free_pages(gfp, order): the logical address of a lowmem block, or 0"),
    op("free_pages_addr", "get_free_pages", ("addr", Kind.ADDR), ("order", Kind.ORDER),
       doc="free_pages(addr, order); free_pages(0, order) does nothing"),
    op("read_phys", "memory", ("phys_addr", Kind.PHYS), ("length", Kind.SIZE), returns=Returns.BYTES, step=False,
       doc="the bytes of simulated physical memory at phys_addr"),
    op("write_phys", "memory", ("phys_addr", Kind.PHYS), ("data", Kind.BYTES), step=False,
       doc="write bytes of simulated physical memory (the suite's patterns)"),
    op("free_area", "free_area", returns=Returns.FREE_AREA, step=False,
       doc="every free block as (pfn, order), as the buddy lists hold them"),
    op("fill", "pages", ("gfp", Kind.GFP), ("order", Kind.ORDER), wire=False,
       doc="alloc_pages(gfp, k) for k from MAX_PAGE_ORDER down to order, each until NULL: the zones' watermark band and exhaustion in one step"),
    op("check_free_area", "free_area", wire=False, doc="INTROSPECT-FREE-AREA: the implementation's free blocks against the model's"),
    op("zone_free_pages", "zone_free_pages", ("zone", Kind.SIZE), returns=Returns.SIZE, step=False,
       doc="the free pages of zone ZONE (its enum zone_type index: DMA 0, DMA32 1, NORMAL 2, HIGHMEM 3, MOVABLE 4), as /proc/zoneinfo's nr_free_pages"),
    op("check_zone_free", "zone_free_pages", wire=False, doc="INTROSPECT-ZONE-FREE for every populated zone"),
    op("check_contents", "memory", wire=False, doc="PAGE-CONTENTS-INTACT and SLAB-CONTENTS-INTACT for everything live"),
)

SUBSYSTEM = Subsystem(
    "pages", "the buddy page allocator: zones, orders, watermarks, alloc_pages/free_pages (mm/page_alloc.c)",
    capabilities=("pages", "get_free_pages", "memory", "free_area", "zone_free_pages"), rules=RULES, ops=OPS,
    model=lambda machine, models, config: PageAllocModel(machine),
)
