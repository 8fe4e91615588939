"""alt_highest: a correct buddy allocator that serves every request from the highest-addressed free block.

Placement is the mirror image of the kernel's (mm/page_alloc.c expand()
keeps the lowest piece; this keeps the highest), and watermarks are ignored
entirely, which the oracle allows: it only forbids failing when the kernel's
fast path would succeed. It claims no detections, so it does not check frees; it
claims BUDDY-NO-SPURIOUS-FAIL, since it keeps every free page in its lists.
Free blocks are kept per zone and order in sorted lists; simple, not fast.
"""

from __future__ import annotations

import bisect

from kmemspec.harness.protocol import Env
from kmemspec.refmodel.gfp import ZoneType, gfp_zone
from kmemspec.refmodel.machine import Machine, Zone
from kmemspec.refmodel.machine import split_aligned


class HighestFirst:
    """Highest zone first, then the highest-addressed block of any order >= the request; split keeps the top piece."""

    capabilities: frozenset[str] = frozenset({"pages", "free_area"})
    claims: frozenset[str] = frozenset({"BUDDY-NO-SPURIOUS-FAIL"})  # liveness only: every free page is in the lists

    def __init__(self, machine: Machine, env: Env) -> None:
        self.machine = machine
        self.env = env
        self.max_order = machine.max_page_order
        self.zones_desc: list[Zone] = sorted(machine.populated_zones, key=lambda z: z.zone_type, reverse=True)
        self.free: dict[ZoneType, list[list[int]]] = {}
        for zone in machine.populated_zones:
            lists: list[list[int]] = [[] for _ in range(machine.nr_page_orders)]
            for r in machine.zone_free_ranges(zone):
                for pfn, order in split_aligned(r, self.max_order):
                    bisect.insort(lists[order], pfn)
            self.free[zone.zone_type] = lists

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        """alloc_pages: the highest eligible zone with a free block >= order (ZONE-FALLBACK), its highest block."""
        if not 0 <= order <= self.max_order:
            return None  # BUDDY-ORDER-LIMIT
        highest = gfp_zone(gfp, self.machine.configured_zones)
        for zone in self.zones_desc:
            if zone.zone_type <= highest:
                pfn = self._take_highest(self.free[zone.zone_type], order)
                if pfn is not None:
                    return pfn
        return None

    def _take_highest(self, lists: list[list[int]], order: int) -> int | None:
        """Remove the highest-addressed free block of order >= ``order``; split it keeping the upper half."""
        best = max(((lists[k][-1], k) for k in range(order, self.max_order + 1) if lists[k]), default=None)
        if best is None:
            return None
        pfn, k = best
        lists[k].pop()
        while k > order:
            k -= 1
            bisect.insort(lists[k], pfn)  # the lower half goes back
            pfn += 1 << k
        return pfn

    def free_pages(self, pfn: int, order: int) -> None:
        """__free_one_page: merge with the buddy pfn ^ (1 << order) while it is free in the same zone."""
        zone = self.machine.zone_of_pfn(pfn)
        assert zone is not None, f"pfn {pfn:#x} is in no zone; this allocator claims no free detections"
        lists = self.free[zone.zone_type]
        while order < self.max_order:
            buddy = pfn ^ (1 << order)
            i = bisect.bisect_left(lists[order], buddy)
            if i == len(lists[order]) or lists[order][i] != buddy:
                break
            del lists[order][i]
            pfn &= ~(1 << order)
            order += 1
        bisect.insort(lists[order], pfn)

    def free_area(self) -> list[tuple[int, int]]:
        """Every free block (pfn, order)."""
        return [(pfn, k) for lists in self.free.values() for k, pfns in enumerate(lists) for pfn in pfns]


def make(machine: Machine, env: Env) -> HighestFirst:
    return HighestFirst(machine, env)
