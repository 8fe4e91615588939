"""fast: an optimized buddy page allocator, written from mm/page_alloc.c, independent of the oracle.

Each populated zone keeps its own ``free_area[]``: one dict per order whose
keys are the first PFNs of the free blocks (insertion order is the free list,
``popitem`` takes the most recently freed block, as the kernel takes the list
head), a bitmask of the non-empty orders and ``nr_free``. Allocation
(``__rmqueue_smallest`` + ``expand``) and freeing (``__free_one_page``) cost
O(MAX_PAGE_ORDER); nothing scans pages. Live blocks are indexed by first PFN,
so every misuse of free_pages() is classified with O(MAX_PAGE_ORDER) lookups
plus a bisect over the usable RAM ranges.

Untouched memory stays implicit: boot files each usable range's run of
top-order blocks as one ``pristine`` row [start, end), and a block leaves the
row only when the allocator takes it, so boot and free_area() cost O(ranges
+ touched blocks) on any machine size, 64 TiB included.

Memory is sparse: a dict pfn -> bytearray(PAGE_SIZE); a page not in the dict
reads as zeros.
"""

from __future__ import annotations

import bisect
from typing import Final, Iterator

from ...refmodel.errors import BadAddress, BadFree, DoubleFree, FreeInterior, FreeWrongOrder, InvalidGfp
from ...refmodel.gfp import GFP_INT, GFP_ZONE_BAD, ZoneType, gfp_zone
from ...refmodel.machine import Machine, PfnRange, Zone, split_aligned_runs
from ..protocol import Env
from .slub import SLAB_CAPABILITIES, SLAB_CLAIMS, SlubLayer

# Plain ints: IntFlag arithmetic is slow on the hot path.
_ZONE_BAD: Final = frozenset(GFP_ZONE_BAD)


class ZoneState:
    """One zone's buddy state: ``free_area[order]`` (pfn -> None, in list order), non-empty-order bitmask, nr_free.

    ``min``/``low`` are WMARK_MIN/WMARK_LOW and ``lowmem_reserve`` is indexed
    by the request's highest_zoneidx (include/linux/mmzone.h struct zone).
    """

    __slots__ = ("zone", "zone_type", "start_pfn", "end_pfn", "free_area", "pristine", "nonempty", "nr_free", "min", "low", "lowmem_reserve")

    def __init__(self, zone: Zone, nr_page_orders: int) -> None:
        self.zone = zone
        self.zone_type: ZoneType = zone.zone_type
        self.start_pfn = zone.start_pfn
        self.end_pfn = zone.end_pfn
        self.free_area: list[dict[int, None]] = [{} for _ in range(nr_page_orders)]
        self.pristine: list[list[int]] = []  # [start, end) rows of top-order blocks boot filed and nothing has touched
        self.nonempty = 0
        self.nr_free = 0
        self.min = zone.watermark.min
        self.low = zone.watermark.low
        self.lowmem_reserve: tuple[int, ...] = zone.lowmem_reserve


def reserve_min(mark: int, gfp: int) -> int:
    """The min watermark the slow path applies (mm/page_alloc.c gfp_to_alloc_flags + __zone_watermark_ok).

    __GFP_HIGH is ALLOC_MIN_RESERVE: min -= min/2; a request that cannot
    direct-reclaim and lacks __GFP_NOMEMALLOC is ALLOC_NON_BLOCK, which with
    MIN_RESERVE takes a further min -= min/4 (WMARK-OK, WMARK-FRACTIONS).
    """
    if gfp & GFP_INT.HIGH:
        mark -= mark // 2
        if not gfp & (GFP_INT.DIRECT_RECLAIM | GFP_INT.NOMEMALLOC):
            mark -= mark // 4
    return mark


class FastBuddy:
    """The ``fast`` implementation: a per-zone buddy allocator with O(MAX_PAGE_ORDER) alloc and free."""

    capabilities: frozenset[str] = frozenset({"pages", "get_free_pages", "memory", "free_area", "zone_free_pages"}) | SLAB_CAPABILITIES
    claims: frozenset[str] = frozenset({
        "CTX-MIGHT-SLEEP", "GFP-ZONE-BAD", "BUDDY-DOUBLE-FREE", "BUDDY-BAD-FREE",
        "BUDDY-FREE-WRONG-ORDER", "BUDDY-FREE-INTERIOR", "API-FREE-BAD-ADDRESS",
        "BUDDY-NO-SPURIOUS-FAIL",  # no per-CPU lists: every free page is in free_area[]
        "WMARK-RESERVES-KEPT",  # the slow path's min watermark, as __zone_watermark_ok applies it
    }) | SLAB_CLAIMS

    def __init__(self, machine: Machine, env: Env) -> None:
        self.machine = machine
        self.env = env
        self._max_order = machine.max_page_order
        self._page_shift = machine.page_shift
        self._page_size = machine.page_size
        self._zones = [ZoneState(z, machine.nr_page_orders) for z in machine.populated_zones]
        self._zone_starts = [zs.start_pfn for zs in self._zones]
        self._live: dict[int, int] = {}
        self._mem: dict[int, bytearray] = {}
        for zs in self._zones:
            self._boot_zone(zs)
        self._zonelists = self._build_zonelists(lowmem_only=False)
        self._lowmem_zonelists = self._build_zonelists(lowmem_only=True)
        self.slab = SlubLayer(machine, env, self)

    # -- boot ------------------------------------------------------------------

    def _boot_zone(self, zs: ZoneState) -> None:
        """memblock_free_all: hand the zone's usable ranges to the buddy in maximal aligned blocks."""
        for r in self._boot_ranges(zs.zone):
            for pfn, order, count in self._boot_blocks(r):
                if count == 1:
                    self._add(zs, pfn, order)
                else:  # a row of top-order blocks: filed as one, taken apart as the allocator uses it
                    zs.pristine.append([pfn, pfn + (count << order)])
                    zs.nonempty |= 1 << order
                zs.nr_free += count << order

    def _boot_ranges(self, zone: Zone) -> Iterator[PfnRange]:
        """The zone's RAM minus memblock-reserved ranges (HOLE-RESERVED, HOLE-BOOT-HANDOVER)."""
        return self.machine.zone_free_ranges(zone)

    def _boot_blocks(self, r: PfnRange) -> Iterator[tuple[int, int, int]]:
        """The aligned blocks ``r`` is handed over in (mm/memblock.c __free_pages_memory), as (pfn, order, count) rows."""
        return split_aligned_runs(r, self._max_order)

    def _build_zonelists(self, lowmem_only: bool) -> list[tuple[int, tuple[ZoneState, ...]]]:
        """(highest_zoneidx, zonelist) for each value of gfp & GFP_ZONEMASK (include/linux/gfp.h gfp_zone)."""
        configured = self.machine.configured_zones
        table = []
        for bits in range(GFP_INT.ZONEMASK + 1):
            highest = gfp_zone(bits, configured)
            table.append((int(highest), self._zonelist(highest, lowmem_only)))
        return table

    def _zonelist(self, highest: ZoneType, lowmem_only: bool) -> tuple[ZoneState, ...]:
        """ZONE-FALLBACK: populated zones at or below highest_zoneidx, highest first (next_zones_zonelist).

        ``lowmem_only`` keeps zones that lie entirely below max_low_pfn, for
        __get_free_pages, which needs page_address() (API-GETFREE).
        """
        limit = self.machine.max_low_pfn
        return tuple(
            zs for zs in reversed(self._zones)
            if zs.zone_type <= highest and (not lowmem_only or zs.end_pfn <= limit)
        )

    # -- free lists --------------------------------------------------------------

    def _add(self, zs: ZoneState, pfn: int, order: int) -> None:
        """add_to_free_list: the block goes to the head of free_area[order]."""
        zs.free_area[order][pfn] = None
        zs.nonempty |= 1 << order

    def _del(self, zs: ZoneState, pfn: int, order: int) -> None:
        """del_page_from_free_list."""
        area = zs.free_area[order]
        del area[pfn]
        if not area and not (order == self._max_order and zs.pristine):
            zs.nonempty &= ~(1 << order)

    def _pop_block(self, zs: ZoneState, order: int) -> int:
        """Unlink and return the head block of free_area[order] (get_page_from_free_area + del_page_from_free_list)."""
        area = zs.free_area[order]
        pfn, _ = area.popitem()
        if not area and not (order == self._max_order and zs.pristine):
            zs.nonempty &= ~(1 << order)
        return pfn

    def _unpack_pristine(self, zs: ZoneState) -> None:
        """File the next untouched top-order block on the free list: the highest one, as popping a list boot
        filled in ascending order would give (the row keeps the rest)."""
        row = zs.pristine[-1]
        row[1] -= 1 << self._max_order
        pfn = row[1]
        if row[0] == row[1]:
            zs.pristine.pop()
        zs.free_area[self._max_order][pfn] = None

    def _has_block(self, zs: ZoneState, order: int) -> bool:
        """Some free_area[order..MAX_PAGE_ORDER] list is non-empty (__zone_watermark_ok step 5)."""
        return zs.nonempty >> order != 0

    def _rmqueue(self, zs: ZoneState, order: int) -> int:
        """__rmqueue_smallest + expand(): take the smallest free block >= order, keep its lowest piece."""
        mask = zs.nonempty >> order
        k = order + (mask & -mask).bit_length() - 1
        if k == self._max_order and not zs.free_area[k]:
            self._unpack_pristine(zs)
        pfn = self._pop_block(zs, k)
        while k > order:
            k -= 1
            self._add(zs, pfn + (1 << k), k)
        zs.nr_free -= 1 << order
        return pfn

    def _buddy_pfn(self, pfn: int, order: int) -> int:
        """__find_buddy_pfn: pfn ^ (1 << order) (mm/internal.h, BUDDY-PFN)."""
        return pfn ^ (1 << order)

    def _take_buddy(self, zs: ZoneState, buddy: int, order: int) -> bool:
        """page_is_buddy: the buddy is a free block of this order in the same zone; unlink it if so (mm/internal.h)."""
        area = zs.free_area[order]
        if buddy not in area:
            return False
        self._del(zs, buddy, order)
        return True

    def _release(self, zs: ZoneState, pfn: int, order: int) -> None:
        """__free_one_page: merge with free buddies while order < MAX_PAGE_ORDER, then add the block."""
        self._live.pop(pfn, None)
        zs.nr_free += 1 << order
        while order < self._max_order:
            buddy = self._buddy_pfn(pfn, order)
            if not self._take_buddy(zs, buddy, order):
                break
            pfn = self._combined_pfn(pfn, buddy)
            order += 1
        self._add(zs, pfn, order)

    def _combined_pfn(self, pfn: int, buddy: int) -> int:
        """The merged block starts at buddy_pfn & pfn (mm/page_alloc.c __free_one_page combined_pfn)."""
        return pfn & buddy

    def _zone_of(self, pfn: int) -> ZoneState:
        """page_zone(): the zone state whose span holds ``pfn`` (pfn is known to be usable RAM)."""
        return self._zones[bisect.bisect_right(self._zone_starts, pfn) - 1]

    # -- allocation ----------------------------------------------------------------

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        """alloc_pages(gfp, order): the first PFN of a free 2^order block, or None (mm/page_alloc.c __alloc_pages)."""
        return self._alloc(int(gfp), order, self._zonelists)

    def get_free_pages(self, gfp: int, order: int) -> int:
        """__get_free_pages: alloc_pages(gfp & ~__GFP_HIGHMEM) from lowmem, as page_address(), or 0 (API-GETFREE)."""
        pfn = self._alloc(int(gfp) & ~GFP_INT.HIGHMEM, order, self._lowmem_zonelists)
        return 0 if pfn is None else self.machine.pfn_to_virt(pfn)

    def _alloc(self, gfp: int, order: int, zonelists: list[tuple[int, tuple[ZoneState, ...]]]) -> int | None:
        """__alloc_frozen_pages_noprof: order check, prepare_alloc_pages (gfp_zone, might_alloc), fast then slow path."""
        order = self._checked_order(order)
        if order is None:
            return None
        self._check_gfp_zone(gfp)
        self._might_alloc(gfp)
        highest, zonelist = zonelists[gfp & GFP_INT.ZONEMASK]
        zs = self._fast_zone(zonelist, order, highest)
        if zs is None:
            zs = self._slow_zone(gfp, zonelist, order, highest)
            if zs is None:
                return None
        pfn = self._rmqueue(zs, order)
        self._live[pfn] = order
        if gfp & GFP_INT.ZERO:
            self._clear_block(pfn, order)
        return pfn

    def _checked_order(self, order: int) -> int | None:
        """BUDDY-ORDER-LIMIT: order > MAX_PAGE_ORDER returns NULL before anything else (order is unsigned)."""
        return order if 0 <= order <= self._max_order else None

    def _check_gfp_zone(self, gfp: int) -> None:
        """GFP-ZONE-BAD: gfp_zone() VM_BUG_ONs on a GFP_ZONE_BAD combination (include/linux/gfp.h)."""
        if gfp & GFP_INT.ZONEMASK in _ZONE_BAD:
            raise InvalidGfp(f"gfp_zone: bad zone modifiers {gfp & GFP_INT.ZONEMASK:#x} in gfp {gfp:#x} (GFP_ZONE_BAD)")

    def _might_alloc(self, gfp: int) -> None:
        """might_alloc(): might_sleep_if(gfpflags_allow_blocking(gfp)) at entry (include/linux/sched/mm.h)."""
        if gfp & GFP_INT.DIRECT_RECLAIM:
            self.env.might_sleep()

    def _fast_zone(self, zonelist: tuple[ZoneState, ...], order: int, highest: int) -> ZoneState | None:
        """get_page_from_freelist with ALLOC_WMARK_LOW: free - (2^order - 1) > low + lowmem_reserve[highest]."""
        need = (1 << order) - 1
        for zs in zonelist:
            if zs.nr_free - need > zs.low + zs.lowmem_reserve[highest] and self._has_block(zs, order):
                return zs
        return None

    def _slow_zone(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int, highest: int) -> ZoneState | None:
        """__alloc_pages_slowpath: min watermark with reserves, __GFP_MEMALLOC without watermarks, then direct reclaim."""
        need = (1 << order) - 1
        for zs in zonelist:
            mark = reserve_min(zs.min, gfp) + zs.lowmem_reserve[highest]
            if zs.nr_free - need > mark and self._has_block(zs, order):
                return zs
        if gfp & GFP_INT.MEMALLOC and not gfp & GFP_INT.NOMEMALLOC:
            return self._any_zone(zonelist, order)
        return self._direct_reclaim(gfp, zonelist, order)

    def _direct_reclaim(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int) -> ZoneState | None:
        """Reclaim (sleep) only if can_direct_reclaim (CTX-NO-SLEEP); a blocking __GFP_NOFAIL then ignores watermarks.

        The simulated reclaim frees nothing. In atomic context might_sleep has
        already reported the caller's misuse and, as in the kernel, the call
        still blocks here.
        """
        if not gfp & GFP_INT.DIRECT_RECLAIM:
            return None
        self.env.sleep()
        return self._any_zone(zonelist, order) if gfp & GFP_INT.NOFAIL else None

    def _any_zone(self, zonelist: tuple[ZoneState, ...], order: int) -> ZoneState | None:
        """ALLOC_NO_WATERMARKS: the first zone with a big enough free block (WMARK-NO-WATERMARKS)."""
        for zs in zonelist:
            if self._has_block(zs, order):
                return zs
        return None

    # -- free --------------------------------------------------------------------

    def free_pages(self, pfn: int, order: int) -> None:
        """__free_pages(pfn, order). Misuse raises (VM_BUG_ON under DEBUG_VM) and changes nothing."""
        self._check_free(pfn, order)
        self.slab.check_page_free(pfn, order)
        self._release(self._zone_of(pfn), pfn, order)

    def _check_free(self, pfn: int, order: int) -> None:
        """Classify a free as the oracle does: wrong order, interior, not usable RAM, already free."""
        live = self._live.get(pfn)
        if live is not None:
            if live != order:
                raise FreeWrongOrder(f"pfn {pfn:#x} heads a live order-{live} block, freed as order {order}")
            return
        head = self._live_head_covering(pfn)
        if head is not None:
            raise FreeInterior(f"pfn {pfn:#x} is a tail page of the live order-{self._live[head]} block at pfn {head:#x}")
        if pfn < 0 or self.machine.usable_range_of(pfn) is None:
            raise BadFree(f"Bad page state: pfn {pfn:#x} is not RAM handed to the buddy allocator (hole, reserved or beyond memory)")
        raise DoubleFree(f"pfn {pfn:#x} is already free (page refcount 0)")

    def _live_head_covering(self, pfn: int) -> int | None:
        """The first PFN of the live block holding ``pfn`` as a tail page: blocks are aligned, so try each order."""
        live = self._live
        for k in range(1, self._max_order + 1):
            head = pfn & -(1 << k)
            order = live.get(head)
            if order is not None and order >= k:
                return head
        return None

    def free_pages_addr(self, addr: int, order: int) -> None:
        """free_pages(addr, order): 0 does nothing; else VM_BUG_ON(!virt_addr_valid(addr)), then
        __free_pages(virt_to_page(addr), order), which rounds down to the page (API-FREE-ADDR)."""
        if addr == 0:
            return
        pfn = self.machine.virt_to_pfn(addr)
        if pfn is None:
            raise BadAddress(f"free_pages: {addr:#x} is not a lowmem logical address (virt_addr_valid fails)")
        self.free_pages(pfn, order)

    # -- memory ------------------------------------------------------------------

    def read_phys(self, phys_addr: int, length: int) -> bytes:
        """Read ``length`` bytes of simulated physical memory; untouched pages read as zeros."""
        out = bytearray()
        size, shift, mem = self._page_size, self._page_shift, self._mem
        addr, end = phys_addr, phys_addr + length
        while addr < end:
            off = addr & (size - 1)
            n = min(size - off, end - addr)
            page = mem.get(addr >> shift)
            out += page[off:off + n] if page is not None else bytes(n)
            addr += n
        return bytes(out)

    def write_phys(self, phys_addr: int, data: bytes) -> None:
        """Write ``data`` at ``phys_addr``, page by page (a page gets its bytearray on first write)."""
        size, shift, mem = self._page_size, self._page_shift, self._mem
        addr, pos, end = phys_addr, 0, len(data)
        while pos < end:
            off = addr & (size - 1)
            n = min(size - off, end - pos)
            page = mem.get(addr >> shift)
            if page is None:
                page = mem[addr >> shift] = bytearray(size)
            page[off:off + n] = data[pos:pos + n]
            addr += n
            pos += n

    def _clear_block(self, pfn: int, order: int) -> None:
        """__GFP_ZERO: kernel_init_pages clears every page of the block (post_alloc_hook, API-ZERO)."""
        mem = self._mem
        nr = 1 << order
        if nr <= len(mem):
            for p in range(pfn, pfn + nr):
                mem.pop(p, None)
        else:
            for p in [p for p in mem if pfn <= p < pfn + nr]:
                del mem[p]

    # -- introspection -------------------------------------------------------------

    def free_area(self) -> list[tuple[int, ...]]:
        """Every free block as (pfn, order), all zones (/proc/buddyinfo's underlying free_area[]); an untouched row of
        top-order blocks as (pfn, MAX_PAGE_ORDER, count)."""
        top = self._max_order
        return ([(pfn, k) for zs in self._zones for k, area in enumerate(zs.free_area) for pfn in area]
                + [(s, top, (e - s) >> top) for zs in self._zones for s, e in zs.pristine])

    def zone_free_pages(self, zone: int) -> int:
        """The zone's NR_FREE_PAGES (/proc/zoneinfo nr_free_pages); 0 for a zone this machine does not populate."""
        return next((zs.nr_free for zs in self._zones if zs.zone_type == zone), 0)


    # -- the slab layer (harness/impls/slub.py) -------------------------------------

    def slab_alloc_pages(self, gfp: int, order: int) -> int | None:
        """Pages for a slab or a large kmalloc: lowmem, since the slab layer returns page_address()."""
        return self._alloc(gfp, order, self._lowmem_zonelists)

    def slab_free_pages(self, pfn: int, order: int) -> None:
        self._release(self._zone_of(pfn), pfn, order)

    def kmalloc(self, size: int, gfp: int) -> int | None:
        return self.slab.kmalloc(size, gfp)

    def kzalloc(self, size: int, gfp: int) -> int | None:
        return self.slab.kzalloc(size, gfp)

    def kmalloc_array(self, n: int, size: int, gfp: int) -> int | None:
        return self.slab.kmalloc_array(n, size, gfp)

    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        return self.slab.krealloc(addr, size, gfp)

    def ksize(self, addr: int) -> int:
        return self.slab.ksize(addr)

    def kfree(self, addr: int) -> None:
        self.slab.kfree(addr)

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> int | None:
        return self.slab.kmem_cache_create(name, size, align, flags)

    def kmem_cache_alloc(self, cache: int, gfp: int) -> int | None:
        return self.slab.kmem_cache_alloc(cache, gfp)

    def kmem_cache_free(self, cache: int, addr: int) -> None:
        self.slab.kmem_cache_free(cache, addr)

    def kmem_cache_destroy(self, cache: int) -> None:
        self.slab.kmem_cache_destroy(cache)

    def kmem_cache_shrink(self, cache: int) -> None:
        self.slab.kmem_cache_shrink(cache)

    def slabs(self) -> list[tuple[int, int, int, int, int]]:
        return self.slab.slabs()

    def kmem_cache_validate(self, cache: int) -> None:
        self.slab.kmem_cache_validate(cache)


def make(machine: Machine, env: Env) -> FastBuddy:
    """Factory named on the command line as ``kmemspec.harness.impls.fast:make``."""
    return FastBuddy(machine, env)
