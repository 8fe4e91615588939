"""alt_random: a correct buddy allocator that places blocks at random.

Among the eligible zones that pass the kernel's fast-path watermark check
(mm/page_alloc.c __zone_watermark_ok with WMARK_LOW), or failing that the slow
path's first retry at the min mark as gfp_to_alloc_flags lowers it (down to
exactly that mark and no further: a min-watermark-exact design), it picks one uniformly,
then a random order >= the request that has free blocks, a random block of
that order, and keeps a random half at each split. Runs are deterministic:
the generator is seeded with a constant. Memory follows init_on_free: a freed
block's pages are dropped, so every free page reads as zero and __GFP_ZERO
needs no work at allocation (include/linux/mm.h want_init_on_free).
Of the detections it claims only BUDDY-DOUBLE-FREE and BUDDY-FREE-INTERIOR;
it also claims the liveness rule BUDDY-NO-SPURIOUS-FAIL and the policy WMARK-RESERVES-KEPT.
"""

from __future__ import annotations

import bisect
import random

from kmemspec.harness.protocol import Env
from kmemspec.refmodel.errors import BadAddress, BadFree, DoubleFree, FreeInterior, FreeWrongOrder
from kmemspec.refmodel.gfp import GFP, ZoneType, gfp_zone
from kmemspec.refmodel.machine import Machine, Zone
from kmemspec.refmodel.machine import split_aligned

SEED = 0x6B6D656D


class FreeList:
    """One free_area[order]: a list for O(1) random choice plus a pfn -> index map for O(1) removal."""

    def __init__(self) -> None:
        self.pfns: list[int] = []
        self.index: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.pfns)

    def __contains__(self, pfn: int) -> bool:
        return pfn in self.index

    def add(self, pfn: int) -> None:
        self.index[pfn] = len(self.pfns)
        self.pfns.append(pfn)

    def remove(self, pfn: int) -> None:
        i = self.index.pop(pfn)
        last = self.pfns.pop()
        if last != pfn:
            self.pfns[i] = last
            self.index[last] = i


class RandomZone:
    """A zone's free lists and its free page count."""

    def __init__(self, zone: Zone, nr_orders: int) -> None:
        self.zone = zone
        self.lists = [FreeList() for _ in range(nr_orders)]
        self.nr_free = 0

    def orders_from(self, order: int) -> list[int]:
        return [k for k in range(order, len(self.lists)) if self.lists[k]]


class RandomBuddy:
    """Random placement; the kernel's rules for everything the oracle checks."""

    capabilities: frozenset[str] = frozenset({"pages", "get_free_pages", "memory"})
    claims: frozenset[str] = frozenset({"BUDDY-DOUBLE-FREE", "BUDDY-FREE-INTERIOR", "BUDDY-NO-SPURIOUS-FAIL", "WMARK-RESERVES-KEPT"})

    def __init__(self, machine: Machine, env: Env) -> None:
        self.machine = machine
        self.env = env
        self.rng = random.Random(SEED)
        self.max_order = machine.max_page_order
        self.zones = {z.zone_type: RandomZone(z, machine.nr_page_orders) for z in machine.populated_zones}
        for rz in self.zones.values():
            for r in machine.zone_free_ranges(rz.zone):
                for pfn, order in split_aligned(r, self.max_order):
                    rz.lists[order].add(pfn)
                    rz.nr_free += 1 << order
        self.live: dict[int, int] = {}
        self.live_starts: list[int] = []
        self.mem: dict[int, bytearray] = {}

    # -- allocation --------------------------------------------------------------

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        return self._alloc(gfp, order, lowmem_only=False)

    def get_free_pages(self, gfp: int, order: int) -> int:
        """__get_free_pages: strip __GFP_HIGHMEM, lowmem zones only, return page_address() or 0 (API-GETFREE)."""
        pfn = self._alloc(gfp & ~GFP.HIGHMEM, order, lowmem_only=True)
        return 0 if pfn is None else self.machine.pfn_to_virt(pfn)

    def _alloc(self, gfp: int, order: int, lowmem_only: bool) -> int | None:
        if not 0 <= order <= self.max_order:
            return None  # BUDDY-ORDER-LIMIT
        highest = gfp_zone(gfp, self.machine.configured_zones)  # a bad mask reads as the lowest zone (no DEBUG_VM)
        eligible = [rz for t, rz in self.zones.items()
                    if t <= highest and (not lowmem_only or rz.zone.end_pfn <= self.machine.max_low_pfn)]
        usable = [rz for rz in eligible if rz.orders_from(order) and self._watermark_ok(rz, order, highest, rz.zone.watermark.low)]
        if not usable:
            mark = self._slowpath_min
            usable = [rz for rz in eligible if rz.orders_from(order) and self._watermark_ok(rz, order, highest, mark(rz.zone.watermark.min, gfp))]
        if not usable and self._ignores_watermarks(gfp):
            usable = [rz for rz in eligible if rz.orders_from(order)]
        if not usable:
            return None
        pfn = self._take(self.rng.choice(usable), order)
        self.live[pfn] = order
        bisect.insort(self.live_starts, pfn)
        return pfn

    @staticmethod
    def _watermark_ok(rz: RandomZone, order: int, highest: ZoneType, mark: int) -> bool:
        """__zone_watermark_ok: free - (2^order - 1) > mark + lowmem_reserve[highest_zoneidx] (WMARK-OK)."""
        return rz.nr_free - ((1 << order) - 1) > mark + rz.zone.lowmem_reserve[highest]

    @staticmethod
    def _slowpath_min(wmin: int, gfp: int) -> int:
        """ALLOC_MIN_RESERVE (__GFP_HIGH) takes half of min; with ALLOC_NON_BLOCK (cannot reclaim, no NOMEMALLOC) a quarter of the rest too."""
        if not gfp & GFP.HIGH:
            return wmin
        wmin -= wmin // 2
        if not gfp & GFP.DIRECT_RECLAIM and not gfp & GFP.NOMEMALLOC:
            wmin -= wmin // 4
        return wmin

    @staticmethod
    def _ignores_watermarks(gfp: int) -> bool:
        """__GFP_MEMALLOC (unless __GFP_NOMEMALLOC), or a blocking __GFP_NOFAIL, may use any free block."""
        if gfp & GFP.MEMALLOC and not gfp & GFP.NOMEMALLOC:
            return True
        return bool(gfp & GFP.NOFAIL and gfp & GFP.DIRECT_RECLAIM)

    def _take(self, rz: RandomZone, order: int) -> int:
        """A random block of a random sufficient order, halved down to ``order`` keeping a random half."""
        k = self.rng.choice(rz.orders_from(order))
        pfn = self.rng.choice(rz.lists[k].pfns)
        rz.lists[k].remove(pfn)
        while k > order:
            k -= 1
            half = 1 << k
            keep_upper = self.rng.random() < 0.5
            rz.lists[k].add(pfn if keep_upper else pfn + half)
            pfn += half if keep_upper else 0
        rz.nr_free -= 1 << order
        return pfn

    # -- free --------------------------------------------------------------------

    def free_pages(self, pfn: int, order: int) -> None:
        """__free_pages with DEBUG_VM-style checks, then init_on_free and buddy merging."""
        head = self._live_head(pfn)
        if head is None:
            if pfn < 0 or self.machine.usable_range_of(pfn) is None:
                raise BadFree(f"pfn {pfn:#x} is not RAM given to the buddy allocator")
            raise DoubleFree(f"pfn {pfn:#x} is already free")
        if head != pfn:
            raise FreeInterior(f"pfn {pfn:#x} is inside the live block at pfn {head:#x}")
        if self.live[pfn] != order:
            raise FreeWrongOrder(f"pfn {pfn:#x} was allocated with order {self.live[pfn]}, freed with order {order}")
        del self.live[pfn]
        del self.live_starts[bisect.bisect_left(self.live_starts, pfn)]
        for p in range(pfn, pfn + (1 << order)):
            self.mem.pop(p, None)
        self._merge(pfn, order)

    def _live_head(self, pfn: int) -> int | None:
        """The first PFN of the live block containing ``pfn``, by bisection over the sorted live starts."""
        i = bisect.bisect_right(self.live_starts, pfn) - 1
        if i < 0:
            return None
        head = self.live_starts[i]
        return head if pfn < head + (1 << self.live[head]) else None

    def _merge(self, pfn: int, order: int) -> None:
        zone = self.machine.zone_of_pfn(pfn)
        assert zone is not None
        rz = self.zones[zone.zone_type]
        rz.nr_free += 1 << order
        while order < self.max_order and (pfn ^ (1 << order)) in rz.lists[order]:
            rz.lists[order].remove(pfn ^ (1 << order))
            pfn &= ~(1 << order)
            order += 1
        rz.lists[order].add(pfn)

    def free_pages_addr(self, addr: int, order: int) -> None:
        if addr == 0:
            return
        pfn = self.machine.virt_to_pfn(addr)  # virt_to_page() rounds down to the page
        if pfn is None:
            raise BadAddress(f"{addr:#x} is not a lowmem logical address")
        self.free_pages(pfn, order)

    # -- memory ------------------------------------------------------------------

    def read_phys(self, phys_addr: int, length: int) -> bytes:
        ps = self.machine.page_size
        return b"".join(self._page_bytes(a, min(ps - a % ps, phys_addr + length - a))
                        for a in self._page_starts(phys_addr, length))

    def write_phys(self, phys_addr: int, data: bytes) -> None:
        ps = self.machine.page_size
        pos = 0
        for a in self._page_starts(phys_addr, len(data)):
            n = min(ps - a % ps, len(data) - pos)
            page = self.mem.setdefault(a // ps, bytearray(ps))
            page[a % ps:a % ps + n] = data[pos:pos + n]
            pos += n

    def _page_starts(self, phys_addr: int, length: int) -> list[int]:
        """The address where each page-sized piece of [phys_addr, phys_addr + length) starts."""
        ps = self.machine.page_size
        first = [phys_addr] if length > 0 else []
        return first + list(range((phys_addr // ps + 1) * ps, phys_addr + length, ps))

    def _page_bytes(self, addr: int, n: int) -> bytes:
        ps = self.machine.page_size
        page = self.mem.get(addr // ps)
        return bytes(n) if page is None else bytes(page[addr % ps:addr % ps + n])


def make(machine: Machine, env: Env) -> RandomBuddy:
    return RandomBuddy(machine, env)
