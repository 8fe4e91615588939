"""The page allocator's rule sets: alloc_pages/free_pages sequences, valid and invalid, and __get_free_pages on addresses.

``PageRules`` (capability ``pages``) draws allocations with generated GFP
masks and orders 0..MAX_PAGE_ORDER+1 in generated contexts, frees of live
blocks, zone-filling runs that reach the watermark band and exhaustion, a
blocking __GFP_NOFAIL request under pressure, and misuse (double free, wrong
order, interior PFN, never-allocated PFN, bad GFP zone combination, blocking
allocation in atomic context), the misuse only against implementations that
claim the detection. ``GetFreePagesRules`` (``get_free_pages``) does the same
on logical addresses; ``FreeAreaRules``, ``ZoneFreeRules`` and ``MemoryRules``
compare the implementation's free lists, free-page counts and page contents
with the model's mid-sequence.
Checks live in the lockstep checker; these only decide what to try
(mm/page_alloc.c).
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import consumes, multiple, precondition, rule

from ...refmodel.context import Context, in_atomic
from ...refmodel.gfp import GFP, GFP_ATOMIC, GFP_INT, GFP_KERNEL, GFP_NOWAIT, ZoneType, gfp_zone
from ...refmodel.machine import Machine
from .._subsystems import register_rule_set
from ..strategies.gfp import bad_gfp_masks, gfp_masks
from ..strategies.pages import ATOMIC_CONTEXTS, contexts, orders
from ._base import Block, RuleSet, claims, not_in_atomic

_COMP = int(GFP.COMP)

#: A zone is filled (with the zones below it) only while they hold at most this many top-order blocks' worth of
#: pages, so one fill step stays cheap: on x86_64 that is ZONE_DMA on any memory size, ZONE_DMA32 up to 256 MiB.
FILL_LIMIT_BLOCKS = 64

_FILL_ZONES = ((GFP.HIGHMEM, ZoneType.HIGHMEM), (0, ZoneType.NORMAL), (GFP.DMA32, ZoneType.DMA32), (GFP.DMA, ZoneType.DMA))


def fill_zone_bits(machine: Machine) -> int | None:
    """The zone modifier (0 for none) of the highest zone whose zonelist ``fill`` can exhaust cheaply, or None."""
    for bits, zone in _FILL_ZONES:
        if gfp_zone(int(bits), machine.configured_zones) is not zone or zone not in {z.zone_type for z in machine.populated_zones}:
            continue
        if _cheap_to_fill(machine, zone):
            return int(bits)
    return None


def _cheap_to_fill(machine: Machine, highest: ZoneType) -> bool:
    """The zones at or below ``highest`` hold at most FILL_LIMIT_BLOCKS top-order blocks' worth of pages."""
    pages = sum(z.end_pfn - z.start_pfn for z in machine.populated_zones if z.zone_type <= highest)
    return pages >> machine.max_page_order <= FILL_LIMIT_BLOCKS


def _fillable_boundaries(machine: Machine) -> tuple[int, ...]:
    """The first PFNs of the zones above the lowest in the zonelist ``fill`` can exhaust: where two filled zones meet."""
    bits = fill_zone_bits(machine)
    if bits is None:
        return ()
    highest = gfp_zone(bits, machine.configured_zones)
    return tuple(z.start_pfn for z in machine.populated_zones if z.zone_type <= highest)[1:]


def fillable(self: Any) -> bool:
    """A precondition: some zonelist of the machine can be filled in one cheap step."""
    return fill_zone_bits(self.iut.machine) is not None


def fill_gfp(self: Any, gfp: int) -> int:
    """``gfp`` as drawn where its zones can be filled, else with the zone modifier of the highest zone that can."""
    m = self.iut.machine
    if _cheap_to_fill(m, gfp_zone(gfp, m.configured_zones)):
        return gfp
    return (gfp & ~int(GFP_INT.ZONEMASK)) | int(fill_zone_bits(m) or 0)


class PageRules(RuleSet):
    """alloc_pages and free_pages, valid and misused: every implementation has them (capability ``pages``)."""

    # -- valid operations ------------------------------------------------------------

    @precondition(not_in_atomic)
    @rule(target=RuleSet.blocks, gfp=gfp_masks(blocking=True), data=st.data())
    def alloc_blocking(self, gfp: int, data: st.DataObject) -> Any:
        return self._alloc(gfp, data.draw(orders(self.max_order), label="order"))

    @rule(target=RuleSet.blocks, gfp=gfp_masks(blocking=False), data=st.data())
    def alloc_atomic(self, gfp: int, data: st.DataObject) -> Any:
        return self._alloc(gfp, data.draw(orders(self.max_order), label="order"))

    @rule(block=consumes(RuleSet.blocks))
    def free(self, block: Block) -> None:
        self.iut.free_pages(block.start, block.order)

    @rule(target=RuleSet.blocks, block=consumes(RuleSet.blocks), data=st.data())
    def free_then_alloc_zeroed(self, block: Block, data: st.DataObject) -> Any:
        """A block freed, then one of its order asked for with __GFP_ZERO: where the freed pages come straight back,
        dirty, every page of the new block must still read zero (mm/page_alloc.c post_alloc_hook, kernel_init_pages
        over all 1 << order pages)."""
        self.iut.free_pages(block.start, block.order)
        return self._alloc(data.draw(gfp_masks(blocking=False), label="gfp") | GFP.ZERO, block.order)

    @precondition(lambda self: _fillable_boundaries(self.iut.machine) != ())
    @rule(target=RuleSet.blocks, data=st.data())
    def free_across_zone_boundary(self, data: st.DataObject) -> Any:
        """The zones below the highest cheap one emptied (__GFP_MEMALLOC: no watermarks), the two blocks that meet at a
        zone boundary given back, then a block of twice the larger one's size asked for: buddies merge only within one
        zone (mm/internal.h page_is_buddy), so no block may straddle the boundary (BUDDY-NO-CROSS-ZONE)."""
        gfp = (int(GFP_ATOMIC | GFP.MEMALLOC) & ~int(GFP_INT.ZONEMASK)) | int(fill_zone_bits(self.iut.machine) or 0)
        got = list(self._blocks(self.iut.fill(gfp, 0)).values)
        by_end = {b.start + (1 << b.order): b for b in got}
        pairs = [(by_end[b.start], b) for b in got if b.start in _fillable_boundaries(self.iut.machine) and b.start in by_end]
        if not pairs:  # a block at the boundary was live before the fill: the fill still stands
            return multiple(*got)
        below, above = data.draw(st.sampled_from(pairs), label="boundary")
        self.iut.free_pages(below.start, below.order)
        self.iut.free_pages(above.start, above.order)
        asked = min(max(below.order, above.order) + 1, self.max_order)
        pfn = self.iut.alloc_pages(gfp, asked)
        kept = [b for b in got if b not in (below, above)]
        return multiple(*kept, *([Block(pfn, asked)] if pfn is not None else []))

    @rule(ctx=contexts())
    def set_context(self, ctx: Context) -> None:
        self.iut.set_context(ctx)

    @precondition(fillable)
    @rule(target=RuleSet.blocks, gfp=gfp_masks(blocking=False), data=st.data())
    def fill(self, gfp: int, data: st.DataObject) -> Any:
        """Largest blocks first, then smaller ones down to a drawn order, until the implementation says no: the
        watermark band and MUST_FAIL, on any machine size (the zones below 4 GiB on a big one)."""
        order = data.draw(st.integers(0, self.max_order), label="order")
        return self._blocks(self.iut.fill(fill_gfp(self, gfp), order))

    @precondition(fillable)
    @precondition(not_in_atomic)
    @rule(target=RuleSet.blocks)
    def nofail_under_pressure(self) -> Any:
        """Fill with GFP_ATOMIC until it fails, then a blocking __GFP_NOFAIL request: NOFAIL-NEVER-NULL's band."""
        got = self._blocks(self.iut.fill(fill_gfp(self, int(GFP_ATOMIC)), 0))
        pfn = self.iut.alloc_pages(fill_gfp(self, int(GFP_KERNEL | GFP.NOFAIL)), 0)
        return multiple(*got.values, *([Block(pfn, 0)] if pfn is not None else []))

    @precondition(fillable)
    @precondition(not_in_atomic)
    @rule(target=RuleSet.blocks)
    def blocking_in_watermark_band(self) -> Any:
        """Fill with GFP_NOWAIT, which stops at the min mark, give the last page back, then a blocking order-0 request:
        below the low mark the fast path fails and the slow path's retry at the min mark serves it before any direct
        reclaim (mm/page_alloc.c __alloc_pages_slowpath; with no per-CPU lists, as BUDDY-NO-SPURIOUS-FAIL assumes):
        that rule's band, in one step."""
        got = list(self._blocks(self.iut.fill(fill_gfp(self, int(GFP_NOWAIT)), 0)).values)
        if got:
            self.iut.free_pages(got[-1].start, got[-1].order)
        pfn = self.iut.alloc_pages(fill_gfp(self, int(GFP_KERNEL)), 0)
        return multiple(*got[:-1], *([Block(pfn, 0)] if pfn is not None else []))

    # -- misuse, only where claimed ----------------------------------------------------

    @precondition(claims("BUDDY-DOUBLE-FREE"))
    @rule(block=consumes(RuleSet.blocks))
    def double_free(self, block: Block) -> None:
        self.iut.free_pages(block.start, block.order)
        self.iut.free_pages(block.start, block.order)

    @precondition(claims("BUDDY-DOUBLE-FREE"))
    @rule(data=st.data())
    def free_never_allocated(self, data: st.DataObject) -> None:
        m = self.iut.machine
        ranges = [r for z in m.populated_zones for r in m.zone_free_ranges(z)]
        r = data.draw(st.sampled_from(ranges), label="range")
        pfn = data.draw(st.integers(r.start, r.end - 1), label="pfn")
        # Once the slab layer holds pages the model cannot see, "free" here may be a slab page.
        assume(self.iut.model.live_block_at(pfn) is None and not self.iut.model.opaque)
        self.iut.free_pages(pfn, data.draw(st.integers(0, self.max_order), label="order"))

    @precondition(claims("BUDDY-FREE-WRONG-ORDER"))
    @rule(target=RuleSet.blocks, data=st.data())
    def free_wrong_order(self, data: st.DataObject) -> Any:
        """free_pages of a live compound block with another order (one is allocated in the same step if none is live);
        the kernel checks the order only for compound pages, elsewhere it is undefined."""
        slabs = self.iut.slab.slab_blocks  # the slab layer's blocks have their own rule (SLAB-PAGE-BAD-FREE)
        compound = sorted(b.pfn for b in self.iut.model.live.values() if b.order > 0 and b.gfp & _COMP and b.pfn not in slabs)
        made = None
        if not compound:
            made = self._alloc(int(GFP_ATOMIC) | _COMP, data.draw(st.integers(1, min(3, self.max_order)), label="order"))
            assume(isinstance(made, Block))
            compound = [made.start]
        live = self.iut.model.live[data.draw(st.sampled_from(compound), label="pfn")]
        order = data.draw(st.integers(0, self.max_order).filter(lambda o: o != live.order), label="order")
        self.iut.free_pages(live.pfn, order)
        return made if made is not None else multiple()

    @precondition(claims("BUDDY-FREE-WRONG-ORDER"))
    @rule(target=RuleSet.blocks, gfp=gfp_masks(blocking=False), order=st.integers(1, 3))
    def alloc_compound(self, gfp: int, order: int) -> Any:
        return self._alloc(gfp | GFP.COMP, min(order, self.max_order))

    @precondition(claims("BUDDY-FREE-INTERIOR"))
    @rule(target=RuleSet.blocks, data=st.data())
    def free_interior(self, data: st.DataObject) -> Any:
        """free_pages of a PFN inside a live block of order > 0 (one is allocated in the same step if none is live)."""
        slabs = self.iut.slab.slab_blocks  # the slab layer's blocks have their own rule (SLAB-PAGE-BAD-FREE)
        live = sorted(b.pfn for b in self.iut.model.live.values() if b.order > 0 and b.pfn not in slabs)
        made = None
        if not live:
            made = self._alloc(int(GFP_ATOMIC), data.draw(st.integers(1, min(3, self.max_order)), label="order"))
            assume(isinstance(made, Block))
            live = [made.start]
        blk = self.iut.model.live[data.draw(st.sampled_from(live), label="pfn")]
        offset = data.draw(st.integers(1, (1 << blk.order) - 1), label="offset")
        self.iut.free_pages(blk.pfn + offset, data.draw(st.integers(0, blk.order), label="order"))
        return made if made is not None else multiple()

    @precondition(claims("BUDDY-BAD-FREE"))
    @rule(data=st.data())
    def free_bad_pfn(self, data: st.DataObject) -> None:
        m = self.iut.machine
        # Reserved pages and holes that have a struct page; a PFN with none is undefined.
        candidates = [r.start for r in m.reserved] + [a.end for a, b in zip(m.ram, m.ram[1:])]
        candidates = [pfn for pfn in candidates if m.pfn_valid(pfn) and m.usable_range_of(pfn) is None]
        assume(candidates)
        self.iut.free_pages(data.draw(st.sampled_from(candidates), label="pfn"), 0)

    @precondition(claims("GFP-ZONE-BAD"))
    @precondition(not_in_atomic)
    @rule(target=RuleSet.blocks, gfp=bad_gfp_masks(), order=st.integers(0, 2))
    def alloc_bad_gfp(self, gfp: int, order: int) -> Any:
        return self._alloc(gfp, order)

    @precondition(claims("CTX-MIGHT-SLEEP"))
    @rule(target=RuleSet.blocks, gfp=gfp_masks(blocking=True), order=st.integers(0, 2), ctx=st.sampled_from(ATOMIC_CONTEXTS))
    def alloc_blocking_in_atomic(self, gfp: int, order: int, ctx: Context) -> Any:
        """A blocking allocation in atomic context (entered in the same step unless already there): might_alloc's
        might_sleep splat (mm/page_alloc.c prepare_alloc_pages)."""
        before = self.iut.env.context
        if not in_atomic(before):
            self.iut.set_context(ctx)
        got = self._alloc(gfp, order)
        if not in_atomic(before):
            self.iut.set_context(before)
        return got

    # -- helpers ---------------------------------------------------------------------------

    def _blocks(self, pfns: list[int]) -> Any:
        live = self.iut.model.live
        return multiple(*(Block(p, live[p].order) for p in pfns if p in live))

    def _alloc(self, gfp: int, order: int) -> Any:
        pfn = self.iut.alloc_pages(gfp, order)
        return multiple() if pfn is None else Block(pfn, order)


class GetFreePagesRules(RuleSet):
    """__get_free_pages and free_pages on logical addresses, NULL included, and bad addresses where claimed."""

    @precondition(not_in_atomic)
    @rule(target=RuleSet.addrs, gfp=gfp_masks(blocking=True), data=st.data())
    def get_free_pages_blocking(self, gfp: int, data: st.DataObject) -> Any:
        return self.get_free_pages(gfp, data)

    @rule(target=RuleSet.addrs, gfp=gfp_masks(blocking=False), data=st.data())
    def get_free_pages(self, gfp: int, data: st.DataObject) -> Any:
        order = data.draw(orders(self.max_order), label="order")
        addr = self.iut.get_free_pages(gfp, order)
        return multiple() if addr == 0 else Block(addr, order)

    @rule(block=consumes(RuleSet.addrs))
    def free_addr(self, block: Block) -> None:
        self.iut.free_pages_addr(block.start, block.order)

    @rule(order=st.integers(0, 3))
    def free_addr_null(self, order: int) -> None:
        self.iut.free_pages_addr(0, order)

    @precondition(claims("API-FREE-BAD-ADDRESS"))
    @rule(data=st.data())
    def free_bad_addr(self, data: st.DataObject) -> None:
        m = self.iut.machine
        beyond = -(-m.max_pfn >> (m.section_size_bits - m.page_shift)) << (m.section_size_bits - m.page_shift)
        candidates = [m.page_offset - m.page_size, m.page_size]
        if m.page_offset + (beyond << m.page_shift) < 1 << m.word_bits:
            candidates.append(m.page_offset + (beyond << m.page_shift))  # no struct page there
        self.iut.free_pages_addr(data.draw(st.sampled_from(candidates), label="addr"), 0)


class FreeAreaRules(RuleSet):
    """Mid-sequence, the implementation's free lists equal the model's (INTROSPECT-FREE-AREA)."""

    @rule()
    def check_free_area(self) -> None:
        self.iut.check_free_area()


class ZoneFreeRules(RuleSet):
    """Mid-sequence, every zone's free-page count equals the model's (INTROSPECT-ZONE-FREE; after a slab step too)."""

    @rule()
    def check_zone_free(self) -> None:
        self.iut.check_zone_free()


class MemoryRules(RuleSet):
    """Mid-sequence, every live block and object still holds what was written to it."""

    @rule()
    def check_contents(self) -> None:
        self.iut.check_contents()


class PageStateMachine(PageRules):
    """The machine of an implementation with the ``pages`` capability alone: ``PageRules``. Bind it with ``for_target``."""


register_rule_set("pages", PageRules)
register_rule_set("get_free_pages", GetFreePagesRules)
register_rule_set("free_area", FreeAreaRules)
register_rule_set("zone_free_pages", ZoneFreeRules)
register_rule_set("memory", MemoryRules)
