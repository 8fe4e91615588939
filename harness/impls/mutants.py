"""Seeded-bug variants of ``fast``: one realistic allocator slip each, and the rule that must kill it.

Each mutant is a small subclass of FastBuddy that overrides one method.
Apart from the one whose bug is in ``free_area()`` itself, mutants do not
expose that introspection: once a bug has put the implementation out of step
with the oracle, the free-area comparison (a step, or the end-of-sequence
check) would report INTROSPECT-FREE-AREA first, and the mutant would no longer
measure the rule it targets. ``MUTANTS`` maps each name to its factory, the
rule that must kill it and the preset machine on which short random
sequences reach the bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Final, Iterator

from ...refmodel.errors import BadAddress, BadFree, DoubleFree, InvalidGfp
from ...refmodel.gfp import GFP, ZoneType
from ...refmodel.machine import Machine, PfnRange, Zone
from ..protocol import Env
from .fast import FastBuddy, ZoneState, reserve_min

_NOFAIL_BIT: Final = int(GFP.NOFAIL)


class _NoFreeArea(FastBuddy):
    """FastBuddy without the free_area capability (see the module docstring)."""

    capabilities = FastBuddy.capabilities - {"free_area"}


@dataclass(frozen=True)
class Mutant:
    """A seeded bug: ``factory(machine, env)`` builds it; ``rule_id`` must kill it on preset ``machine``."""

    name: str
    factory: Callable[[Machine, Env], FastBuddy]
    rule_id: str
    machine: str
    description: str


# -- placement: where a block comes from --------------------------------------------


class CrossZoneMerge(_NoFreeArea):
    """page_is_buddy compares zone indices with <= instead of ==: a free buddy in a lower zone merges."""

    def _take_buddy(self, zs: ZoneState, buddy: int, order: int) -> bool:
        for other in self._zones:
            if other.zone_type <= zs.zone_type and buddy in other.free_area[order]:
                self._del(other, buddy, order)
                other.nr_free -= 1 << order
                zs.nr_free += 1 << order
                return True
        return False


class BootMisaligned(_NoFreeArea):
    """Boot hands each free range over in the largest chunks that fit its length, ignoring alignment."""

    def _boot_blocks(self, r: PfnRange) -> Iterator[tuple[int, int]]:
        pfn = r.start
        while pfn < r.end:
            order = min(self._max_order, (r.end - pfn).bit_length() - 1)
            yield pfn, order
            pfn += 1 << order


class MergeHeadFromBuddy(FastBuddy):
    """__free_one_page takes the merged block's start from buddy_pfn instead of combined_pfn = buddy_pfn & pfn.

    Freeing a lower half files a misaligned block that starts at its buddy,
    overlapping the next block and losing the freed one: the free lists show
    it at once (INTROSPECT-FREE-AREA); without introspection it surfaces as
    BUDDY-ALIGN or BUDDY-NO-OVERLAP when a piece is handed out.
    """

    def _combined_pfn(self, pfn: int, buddy: int) -> int:
        return buddy


class MaxOrderExclusive(_NoFreeArea):
    """The free_area search treats MAX_PAGE_ORDER as exclusive (the pre-6.4 MAX_ORDER meaning): top-order blocks are never found."""

    def _has_block(self, zs: ZoneState, order: int) -> bool:
        return (zs.nonempty & ((1 << self._max_order) - 1)) >> order != 0


class ZonelistUnfiltered(_NoFreeArea):
    """The zonelist is built from every populated zone, forgetting to skip those above highest_zoneidx."""

    def _zonelist(self, highest: ZoneType, lowmem_only: bool) -> tuple[ZoneState, ...]:
        limit = self.machine.max_low_pfn
        return tuple(zs for zs in reversed(self._zones) if not lowmem_only or zs.end_pfn <= limit)


class GetFreePagesKeepsHighmem(_NoFreeArea):
    """__get_free_pages neither strips __GFP_HIGHMEM nor restricts itself to lowmem zones."""

    def get_free_pages(self, gfp: int, order: int) -> int:
        pfn = self._alloc(gfp, order, self._zonelists)
        return 0 if pfn is None else self.machine.pfn_to_virt(pfn)


class BootKeepsReserved(_NoFreeArea):
    """Boot hands every RAM page of the zone to the buddy, memblock-reserved ones included."""

    def _boot_ranges(self, zone: Zone) -> Iterator[PfnRange]:
        for r in self.machine.ram:
            start, end = max(r.start, zone.start_pfn), min(r.end, zone.end_pfn)
            if start < end:
                yield PfnRange(start, end)


class BootKeepsHoles(_NoFreeArea):
    """Boot hands the zone's whole span minus memblock.reserved to the buddy (spanned for present pages): holes become free."""

    def _boot_ranges(self, zone: Zone) -> Iterator[PfnRange]:
        start = zone.start_pfn
        for res in self.machine.reserved:
            if res.end <= start or res.start >= zone.end_pfn:
                continue
            if res.start > start:
                yield PfnRange(start, res.start)
            start = res.end
        if start < zone.end_pfn:
            yield PfnRange(start, zone.end_pfn)


class OrderClamped(_NoFreeArea):
    """An oversized request is rounded down to MAX_PAGE_ORDER instead of failing."""

    def _checked_order(self, order: int) -> int | None:
        return min(order, self._max_order) if order >= 0 else None


class UnlinkForgotten(_NoFreeArea):
    """The head block is read from free_area[order] (list_first_entry) but never unlinked (no list_del)."""

    def _pop_block(self, zs: ZoneState, order: int) -> int:
        return next(reversed(zs.free_area[order]))


# -- memory contents ---------------------------------------------------------------


class ZeroHeadOnly(_NoFreeArea):
    """__GFP_ZERO clears only the first page of the block (clear_page instead of a loop over 1 << order)."""

    def _clear_block(self, pfn: int, order: int) -> None:
        self._mem.pop(pfn, None)


class LinkPastBlock(_NoFreeArea):
    """Freeing writes the free-list link into the page one block too far (page + (1 << order)), which may be live."""

    def _release(self, zs: ZoneState, pfn: int, order: int) -> None:
        super()._release(zs, pfn, order)
        link = (pfn ^ 0x4C494E4B).to_bytes(8, "little")
        self.write_phys((pfn + (1 << order)) << self._page_shift, link)


# -- context -------------------------------------------------------------------------


class ReclaimAlwaysSleeps(_NoFreeArea):
    """The slow path enters direct reclaim without testing __GFP_DIRECT_RECLAIM (can_direct_reclaim)."""

    def _direct_reclaim(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int) -> ZoneState | None:
        self.env.sleep()
        return self._any_zone(zonelist, order) if gfp & GFP.NOFAIL and gfp & GFP.DIRECT_RECLAIM else None


class MightSleepMissing(_NoFreeArea):
    """might_alloc() is left out of the entry path: a blocking allocation in atomic context goes unreported."""

    def _might_alloc(self, gfp: int) -> None:
        return None


# -- misuse detection ---------------------------------------------------------------------


class DoubleFreeUnchecked(_NoFreeArea):
    """A PFN that heads no live block is freed anyway (the PageBuddy test is missing): double frees corrupt the lists."""

    def _check_free(self, pfn: int, order: int) -> None:
        try:
            super()._check_free(pfn, order)
        except DoubleFree:
            return


class FreeOrderTrusted(_NoFreeArea):
    """free_pages range-checks the order but trusts it for a live head (no compound_order check)."""

    def _check_free(self, pfn: int, order: int) -> None:
        if pfn in self._live and 0 <= order <= self._max_order:
            return
        super()._check_free(pfn, order)


class BadFreeIgnored(_NoFreeArea):
    """A free of a PFN the buddy never owned (hole, reserved, beyond RAM) returns quietly instead of reporting Bad page state."""

    def _check_free(self, pfn: int, order: int) -> None:
        try:
            super()._check_free(pfn, order)
        except BadFree:
            return


class FreeAddrBadIgnored(_NoFreeArea):
    """free_pages(addr) treats an address that fails virt_addr_valid() like NULL and returns quietly."""

    def free_pages_addr(self, addr: int, order: int) -> None:
        pfn = self.machine.virt_to_pfn(addr) if addr else None
        if pfn is not None:
            self.free_pages(pfn, order)


class ZoneBadPartial(_NoFreeArea):
    """GFP_ZONE_BAD is tested only for __GFP_DMA|__GFP_DMA32; combinations with __GFP_HIGHMEM go through."""

    def _check_gfp_zone(self, gfp: int) -> None:
        if gfp & GFP.DMA and gfp & GFP.DMA32:
            raise InvalidGfp(f"gfp_zone: bad zone modifiers in gfp {gfp:#x}")


# -- introspection ---------------------------------------------------------------------------


class FreeAreaSkipsMax(FastBuddy):
    """free_area() walks orders 0..MAX_PAGE_ORDER - 1 and omits the top-order blocks."""

    def free_area(self) -> list[tuple[int, int]]:
        return [(pfn, k) for zs in self._zones for k, area in enumerate(zs.free_area[:self._max_order]) for pfn in area]


class ReserveIgnoresLowmem(_NoFreeArea):
    """The slow path compares against the min watermark alone, forgetting lowmem_reserve[highest_zoneidx]."""

    def _slow_zone(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int, highest: int) -> ZoneState | None:
        need = (1 << order) - 1
        for zs in zonelist:
            if zs.nr_free - need > reserve_min(zs.min, gfp) and self._has_block(zs, order):
                return zs
        return super()._slow_zone(gfp, zonelist, order, highest)


class NofailGivesUp(_NoFreeArea):
    """After a reclaim that freed nothing, __GFP_NOFAIL returns NULL like any other request."""

    def _direct_reclaim(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int) -> ZoneState | None:
        return super()._direct_reclaim(gfp & ~_NOFAIL_BIT, zonelist, order)


class InteriorFreeIgnored(_NoFreeArea):
    """A free of a tail page returns quietly: the PageTail test that should BUG is missing."""

    def free_pages(self, pfn: int, order: int) -> None:
        if pfn not in self._live and self._live_head_covering(pfn) is not None:
            return
        super().free_pages(pfn, order)


class FreeAddrNullUnchecked(_NoFreeArea):
    """free_pages(addr) lacks its `if (addr != 0)`: free_pages(0) fails virt_addr_valid and BUGs."""

    def free_pages_addr(self, addr: int, order: int) -> None:
        pfn = self.machine.virt_to_pfn(addr)
        if pfn is None:
            raise BadAddress(f"free_pages: {addr:#x} fails virt_addr_valid")
        self.free_pages(pfn, order)


_TABLE: Final[tuple[tuple[str, type[FastBuddy], str, str], ...]] = (
    ("cross-zone-merge", CrossZoneMerge, "BUDDY-NO-CROSS-ZONE", "tiny"),
    ("boot-misaligned", BootMisaligned, "BUDDY-ALIGN", "tiny"),
    ("merge-head-from-buddy", MergeHeadFromBuddy, "INTROSPECT-FREE-AREA", "tiny"),
    ("max-order-exclusive", MaxOrderExclusive, "BUDDY-NO-SPURIOUS-FAIL", "tiny"),
    ("zonelist-unfiltered", ZonelistUnfiltered, "GFP-ZONE-ELIGIBLE", "tiny"),
    ("getfree-keeps-highmem", GetFreePagesKeepsHighmem, "API-LOWMEM-ADDRESS", "tiny-highmem"),
    ("boot-keeps-reserved", BootKeepsReserved, "PAGE-RAM-ONLY", "tiny"),
    ("boot-keeps-holes", BootKeepsHoles, "PAGE-RAM-ONLY", "tiny"),
    ("order-clamped", OrderClamped, "BUDDY-ORDER-LIMIT", "tiny"),
    ("unlink-forgotten", UnlinkForgotten, "BUDDY-NO-OVERLAP", "tiny"),
    ("zero-head-only", ZeroHeadOnly, "API-ZERO", "tiny"),
    ("link-past-block", LinkPastBlock, "PAGE-CONTENTS-INTACT", "tiny"),
    ("reclaim-always-sleeps", ReclaimAlwaysSleeps, "CTX-NO-SLEEP", "tiny"),
    ("might-sleep-missing", MightSleepMissing, "CTX-MIGHT-SLEEP", "tiny"),
    ("double-free-unchecked", DoubleFreeUnchecked, "BUDDY-DOUBLE-FREE", "tiny"),
    ("free-order-trusted", FreeOrderTrusted, "BUDDY-FREE-WRONG-ORDER", "tiny"),
    ("bad-free-ignored", BadFreeIgnored, "BUDDY-BAD-FREE", "tiny"),
    ("free-addr-bad-ignored", FreeAddrBadIgnored, "API-FREE-BAD-ADDRESS", "tiny-highmem"),
    ("zone-bad-partial", ZoneBadPartial, "GFP-ZONE-BAD", "tiny"),
    ("free-area-skips-max", FreeAreaSkipsMax, "INTROSPECT-FREE-AREA", "tiny"),
    ("reserve-ignores-lowmem", ReserveIgnoresLowmem, "WMARK-RESERVES-KEPT", "tiny-wmark"),
    ("nofail-gives-up", NofailGivesUp, "NOFAIL-NEVER-NULL", "tiny-wmark"),
    ("interior-free-ignored", InteriorFreeIgnored, "BUDDY-FREE-INTERIOR", "tiny"),
    ("free-addr-null-unchecked", FreeAddrNullUnchecked, "API-FREE-ADDR-NULL", "tiny"),
)

MUTANTS: Final[dict[str, Mutant]] = {
    name: Mutant(name, cls, rule_id, machine, " ".join((cls.__doc__ or "").split()))
    for name, cls, rule_id, machine in _TABLE
}
