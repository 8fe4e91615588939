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

from dataclasses import dataclass, replace
from typing import Callable, Final, Iterator

from ...refmodel.errors import BadAddress, BadFree, DoubleFree, InvalidGfp
from ...refmodel.gfp import GFP, GFP_INT, GFP_KERNEL, ZoneType
from ...refmodel.machine import Machine, PfnRange, Zone
from ...refmodel.kmalloc import ZERO_SIZE_PTR
from ...refmodel.slab import SLAB_NEVER_MERGE, SlabFlag
from ..protocol import Env
from ...refmodel.rules import rule_ids
from .fast import FastBuddy, ZoneState, reserve_min
from .slub import Slab, SlabCache, SlubLayer



class _NoFreeArea(FastBuddy):
    """FastBuddy without the free_area capability (see the module docstring).

    Page mutants declare no slab capabilities either: the search then spends
    its steps on the page rules the bug breaks.
    """

    capabilities = FastBuddy.capabilities - {"free_area", "zone_free_pages", "kmalloc", "slab", "slab_info", "slab_debug"}


@dataclass(frozen=True)
class Mutant:
    """A seeded bug: ``factory(machine, env)`` builds it; ``rule_id`` must kill it on preset ``machine``."""

    name: str
    factory: Callable[[Machine, Env], FastBuddy]
    rule_id: str
    machine: str
    description: str
    also: tuple[str, ...] = ()  # other rules the same slip breaks as directly (its kernel symptom in another context)

    def __post_init__(self) -> None:
        rule_ids(self.rule_id, *self.also, where=f"mutant {self.name!r} (harness/impls/mutants.py)")


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

    def _boot_blocks(self, r: PfnRange) -> Iterator[tuple[int, int, int]]:
        pfn = r.start
        while pfn < r.end:
            order = min(self._max_order, (r.end - pfn).bit_length() - 1)
            yield pfn, order, 1
            pfn += 1 << order


class MergeHeadFromBuddy(FastBuddy):
    """__free_one_page takes the merged block's start from buddy_pfn instead of combined_pfn = buddy_pfn & pfn.

    Freeing a lower half files a misaligned block that starts at its buddy,
    overlapping the next block and losing the freed one: the free lists show
    it at once (INTROSPECT-FREE-AREA); without introspection it surfaces as
    BUDDY-ALIGN or BUDDY-NO-OVERLAP when a piece is handed out.
    """

    capabilities = FastBuddy.capabilities - {"zone_free_pages", "kmalloc", "slab", "slab_info", "slab_debug"}

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

    capabilities = FastBuddy.capabilities - {"zone_free_pages", "kmalloc", "slab", "slab_info", "slab_debug"}

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


class ReclaimBeforeMinRetry(_NoFreeArea):
    """A request that may reclaim goes to direct reclaim first, skipping the slow path's retry at the min mark."""

    def _slow_zone(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int, highest: int) -> ZoneState | None:
        if gfp & GFP_INT.DIRECT_RECLAIM and not gfp & GFP_INT.MEMALLOC:
            return self._direct_reclaim(gfp, zonelist, order)
        return super()._slow_zone(gfp, zonelist, order, highest)


class NofailGivesUp(_NoFreeArea):
    """After a reclaim that freed nothing, __GFP_NOFAIL returns NULL like any other request."""

    def _direct_reclaim(self, gfp: int, zonelist: tuple[ZoneState, ...], order: int) -> ZoneState | None:
        return super()._direct_reclaim(gfp & ~GFP_INT.NOFAIL, zonelist, order)


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


class TopMergeLosesAPage(_NoFreeArea):
    """A merge that reaches MAX_PAGE_ORDER keeps the block minus its first page: one page leaks per top-order merge.

    No free_area: only the free-page counts (zone_free_pages) show it at once.
    """

    capabilities = _NoFreeArea.capabilities | {"zone_free_pages"}

    def _release(self, zs: ZoneState, pfn: int, order: int) -> None:
        super()._release(zs, pfn, order)
        top = pfn & ~((1 << self._max_order) - 1)
        if top in zs.free_area[self._max_order]:
            self._del(zs, top, self._max_order)
            for k in range(self._max_order):
                self._add(zs, top + (1 << k), k)
            zs.nr_free -= 1


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
    ("reclaim-before-min-retry", ReclaimBeforeMinRetry, "BUDDY-NO-SPURIOUS-FAIL", "tiny-wmark"),
    ("nofail-gives-up", NofailGivesUp, "NOFAIL-NEVER-NULL", "tiny-wmark"),
    ("interior-free-ignored", InteriorFreeIgnored, "BUDDY-FREE-INTERIOR", "tiny"),
    ("free-addr-null-unchecked", FreeAddrNullUnchecked, "API-FREE-ADDR-NULL", "tiny"),
    ("top-merge-loses-a-page", TopMergeLosesAPage, "INTROSPECT-ZONE-FREE", "tiny"),
)

# -- the slab layer and kmalloc (harness/impls/slub.py) ------------------------------


class _SlabMutant(_NoFreeArea):
    """FastBuddy whose slab layer is ``layer``: each slab mutant overrides one SlubLayer method."""

    layer: type[SlubLayer] = SlubLayer
    capabilities = FastBuddy.capabilities - {"free_area", "zone_free_pages"}

    def __init__(self, machine: Machine, env: Env) -> None:
        super().__init__(machine, env)
        self.slab = self.layer(machine, env, self)


class _No96(SlubLayer):
    def _kmalloc_cache(self, size: int, dma: bool) -> SlabCache:
        return super()._kmalloc_cache(1 << (size - 1).bit_length() if size > 8 else size, dma)


class SizeClassNo96(_SlabMutant):
    """kmalloc has only power-of-two buckets: 65..96 bytes land in kmalloc-128, 129..192 in kmalloc-256."""

    layer = _No96


class _BucketTooSmall(SlubLayer):
    def _kmalloc_cache(self, size: int, dma: bool) -> SlabCache:
        # fls(size) instead of fls(size - 1): a power of two plus one stays in the smaller bucket
        return super()._kmalloc_cache(max(1, 1 << (size.bit_length() - 1)) if size > 8 else size, dma)


class BucketTooSmall(_SlabMutant):
    """The bucket index uses fls(size) instead of fls(size - 1): kmalloc(17) gets a 16-byte object."""

    layer = _BucketTooSmall


class _ZeroSizeNull(SlubLayer):
    def kmalloc(self, size: int, gfp: int) -> int | None:
        return None if size == 0 else super().kmalloc(size, gfp)


class ZeroSizeNull(_SlabMutant):
    """kmalloc(0) returns NULL instead of ZERO_SIZE_PTR."""

    layer = _ZeroSizeNull


class _KsizeZeroSizePtr(SlubLayer):
    def ksize(self, addr: int) -> int:
        return 16 if addr == ZERO_SIZE_PTR else super().ksize(addr)


class KsizeZeroSizePtr(_SlabMutant):
    """ksize(ZERO_SIZE_PTR) returns 16, the pointer's value, instead of 0."""

    layer = _KsizeZeroSizePtr


class _LargeOrderClamped(SlubLayer):
    def _kmalloc_large(self, size: int, gfp: int) -> int | None:
        return super()._kmalloc_large(min(size, self.machine.page_size << self.machine.max_page_order), gfp)


class LargeOrderClamped(_SlabMutant):
    """A large kmalloc above KMALLOC_MAX_SIZE is clamped to the largest block instead of failing."""

    layer = _LargeOrderClamped


class _ArrayOverflowWraps(SlubLayer):
    def kmalloc_array(self, n: int, size: int, gfp: int) -> int | None:
        return self.kmalloc((n * size) & ((1 << self.machine.word_bits) - 1), gfp)


class ArrayOverflowWraps(_SlabMutant):
    """kmalloc_array multiplies without check_mul_overflow: the product wraps around size_t."""

    layer = _ArrayOverflowWraps


class _HwcacheIgnored(SlubLayer):
    def _new_cache(self, name: str, object_size: int, align: int, flags: int, *, kmalloc: bool = False) -> SlabCache:
        return super()._new_cache(name, object_size, align, flags & ~int(SlabFlag.HWCACHE_ALIGN), kmalloc=kmalloc)


class HwcacheAlignIgnored(_SlabMutant):
    """calculate_alignment ignores SLAB_HWCACHE_ALIGN."""

    layer = _HwcacheIgnored


class _DmaIgnored(SlubLayer):
    def _kmalloc_cache(self, size: int, dma: bool) -> SlabCache:
        return super()._kmalloc_cache(size, False)


class DmaCacheIgnored(_SlabMutant):
    """kmalloc_type() ignores __GFP_DMA: GFP_DMA objects come from the normal kmalloc caches."""

    layer = _DmaIgnored


class _ZeroIgnored(SlubLayer):
    def _cache_alloc(self, cache: SlabCache, gfp: int) -> int | None:
        return super()._cache_alloc(cache, gfp & ~GFP_INT.ZERO)


class KzallocNotZeroed(_SlabMutant):
    """slab_post_alloc_hook forgets __GFP_ZERO: kzalloc returns a reused object with its old contents."""

    layer = _ZeroIgnored


class _KreallocNoCopy(SlubLayer):
    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        if addr <= ZERO_SIZE_PTR or size == 0 or size <= self.ksize(addr):
            return super().krealloc(addr, size, gfp)
        new = self.kmalloc(size, gfp)
        if new is not None:
            self.kfree(addr)
        return new


class KreallocNoCopy(_SlabMutant):
    """krealloc moves a growing object without copying its contents."""

    layer = _KreallocNoCopy


class _SlabDoubleFree(SlubLayer):
    def _slab_free(self, cache: SlabCache, slab: Slab, addr: int) -> None:
        off = addr - slab.base - cache.red_left_pad
        if not off % cache.size and self._live.get(addr) is not cache:  # no "Object already free" check: the freelist takes it twice
            slab.free.append(addr)
            return
        super()._slab_free(cache, slab, addr)


class SlabDoubleFreeUnchecked(_SlabMutant):
    """slab_free without the consistency check: a second kfree puts the object on the freelist twice."""

    layer = _SlabDoubleFree


class _WrongCacheUnchecked(SlubLayer):
    def kmem_cache_free(self, cid: int, addr: int) -> None:
        owner = self._slab_at(addr)
        if owner is None:
            return super().kmem_cache_free(cid, addr)
        self._slab_free(owner[0], owner[1], addr)


class WrongCacheUnchecked(_SlabMutant):
    """kmem_cache_free trusts the object's own slab and never compares it with the cache it was given."""

    layer = _WrongCacheUnchecked


class _DestroyBusyFrees(SlubLayer):
    def kmem_cache_destroy(self, cid: int) -> None:
        cache = self.caches[cid]
        if cache.refcount == 1:  # the last reference: its objects are freed in silence, then the empty cache goes
            for addr in [a for a, c in self._live.items() if c is cache]:
                self.kmem_cache_free(cid, addr)
        super().kmem_cache_destroy(cid)


class DestroyBusyFrees(_SlabMutant):
    """kmem_cache_destroy frees the slabs of a cache that still has live objects, without a word."""

    layer = _DestroyBusyFrees


class _RefillWithKernel(SlubLayer):
    def _new_slab(self, cache: SlabCache, gfp: int) -> Slab | None:
        return super()._new_slab(cache, int(GFP_KERNEL))


class RefillWithGfpKernel(_SlabMutant):
    """new_slab refills with GFP_KERNEL instead of the caller's flags: a GFP_ATOMIC kmalloc may sleep in reclaim."""

    layer = _RefillWithKernel


class _InteriorAccepted(SlubLayer):
    def _slab_free(self, cache: SlabCache, slab: Slab, addr: int) -> None:
        first = slab.base + cache.red_left_pad
        start = first + (addr - first) // cache.size * cache.size  # rounds down instead of checking
        super()._slab_free(cache, slab, start)


class InteriorFreeAccepted(_SlabMutant):
    """kfree of a pointer inside an object frees the object it points into, instead of reporting InvalidFree."""

    layer = _InteriorAccepted


class _GfpBugOnlyNewSlab(SlubLayer):
    strict_gfp_report = False


class GfpBugOnlyOnNewSlab(_SlabMutant):
    """Claims to report every __GFP_HIGHMEM kmalloc, but reports only when a new slab is needed (as the kernel does)."""

    layer = _GfpBugOnlyNewSlab


class _CacheCreateSilent(SlubLayer):
    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> int | None:
        if size <= 0:
            return None
        cache = self._new_cache(name, size, align, flags)
        self.caches[cache.cid] = cache
        return cache.cid


class CacheCreateNoMightSleep(_SlabMutant):
    """kmem_cache_create takes slab_mutex without might_sleep(): atomic callers are not reported."""

    layer = _CacheCreateSilent


class _SlabsOmitLarge(SlubLayer):
    def slabs(self) -> list[tuple[int, int, int, int, int]]:
        large = {(addr - self._offset) >> self._shift for addr in self._large}
        return [row for row in super().slabs() if row[1] not in large]


class SlabsOmitLarge(_SlabMutant):
    """slabs() leaves out large kmalloc blocks: their objects lie in no slab it shows."""

    layer = _SlabsOmitLarge


class _Emptiest(SlubLayer):
    def _partial_slab(self, cache: SlabCache) -> Slab | None:
        if not cache.partial:
            return None
        return min((cache.slabs[p] for p in cache.partial), key=lambda s: (s.inuse, s.pfn))


class EmptiestFirst(_SlabMutant):
    """Claims SLAB-PARTIAL-FIRST but takes the emptiest slab on the list, an empty one before a partial one."""

    layer = _Emptiest
    claims = FastBuddy.claims | {"SLAB-PARTIAL-FIRST"}


class _ShrinkKeepsEmpty(SlubLayer):
    def kmem_cache_shrink(self, cid: int) -> int:
        self.env.might_sleep()
        return 1


class ShrinkKeepsEmpty(_SlabMutant):
    """kmem_cache_shrink flushes nothing: the cache's empty slabs stay."""

    layer = _ShrinkKeepsEmpty


class _OnSlabHeader(SlubLayer):
    def _new_slab(self, cache: SlabCache, gfp: int) -> Slab | None:
        slab = super()._new_slab(cache, gfp)
        if slab is not None and cache.kmalloc and len(slab.free) > 1:  # an on-slab management struct, 8 bytes
            slab.base += 8
            slab.free = [a + 8 for a in slab.free if a + 8 + cache.size <= slab.base - 8 + (self._page_size << slab.order)]
        return slab


class OnSlabHeader(_SlabMutant):
    """kmalloc slabs start their objects after an 8-byte header, so kmalloc-64 objects are only 8-byte aligned."""

    layer = _OnSlabHeader


class _SlabPagesFromHighmem(SlubLayer):
    def _new_slab(self, cache: SlabCache, gfp: int) -> Slab | None:
        backend = self.backend
        saved = backend.slab_alloc_pages
        zone_bits = GFP_INT.DMA | GFP_INT.DMA32
        # The caller's __GFP_HIGHMEM survives into alloc_pages, which may then pick any zone.
        backend.slab_alloc_pages = lambda g, o: backend.alloc_pages(g if g & zone_bits else g | GFP_INT.HIGHMEM, o)  # type: ignore[method-assign,attr-defined]
        try:
            return super()._new_slab(cache, gfp)
        finally:
            backend.slab_alloc_pages = saved  # type: ignore[method-assign]


class SlabPagesFromHighmem(_SlabMutant):
    """new_slab keeps __GFP_HIGHMEM and takes pages from any zone: objects without a logical address."""

    layer = _SlabPagesFromHighmem
    capabilities = _SlabMutant.capabilities - {"slab_info"}  # else SLAB-INTROSPECT sees the highmem slab first


class _StrideTooSmall(SlubLayer):
    def _new_slab(self, cache: SlabCache, gfp: int) -> Slab | None:
        slab = super()._new_slab(cache, gfp)
        if slab is not None and cache.size >= 2 * cache.align:  # aligned still, but one align unit too close
            n = len(slab.free)
            slab.free = [slab.base + i * (cache.size - cache.align) for i in reversed(range(n))]
        return slab


class StrideTooSmall(_SlabMutant):
    """The slab's objects are laid out one alignment unit closer than their size: each overlaps the next."""

    layer = _StrideTooSmall


class _FreePointerInNeighbour(SlubLayer):
    def _slab_free(self, cache: SlabCache, slab: Slab, addr: int) -> None:
        super()._slab_free(cache, slab, addr)
        if addr + 2 * cache.size <= slab.base + (self._page_size << slab.order):
            # set_freepointer at the wrong offset: the link lands in the next object
            self.backend.write_phys(addr + cache.size - self._offset, b"\xde\xad\xbe\xef\xde\xad\xbe\xef")


class FreePointerInNeighbour(_SlabMutant):
    """kfree writes the freelist link one object too far, into the neighbour, which may be live."""

    layer = _FreePointerInNeighbour


class _NoPoisonOnFree(SlubLayer):
    def _init_object(self, cache: SlabCache, addr: int, red: int) -> None:
        if red == self.red_inactive and addr in self._live_before_free:
            return super()._init_object(replace(cache, poison=False), addr, red)
        super()._init_object(cache, addr, red)

    _live_before_free: frozenset[int] = frozenset()

    def _slab_free(self, cache: SlabCache, slab: Slab, addr: int) -> None:
        self._live_before_free = frozenset({addr})
        try:
            super()._slab_free(cache, slab, addr)
        finally:
            self._live_before_free = frozenset()


class NoPoisonOnFree(_SlabMutant):
    """slab_free re-arms the red zones but does not poison the object: freed memory keeps the caller's data."""

    layer = _NoPoisonOnFree


class _FreePointerInPoison(SlubLayer):
    def _slab_free(self, cache: SlabCache, slab: Slab, addr: int) -> None:
        super()._slab_free(cache, slab, addr)
        if cache.poison and cache.object_size >= 8 and addr in slab.free:
            # set_freepointer at offset 0 as for an ordinary cache, over the poison
            self.backend.write_phys(addr - self._offset, (slab.free[-2] if len(slab.free) > 1 else 0).to_bytes(8, "little"))

    def kmem_cache_validate(self, cid: int) -> None:
        return None  # it would find its own free pointers


class FreePointerInPoison(_SlabMutant):
    """A SLAB_POISON cache keeps the free pointer in the first word of a free object, over the poison."""

    layer = _FreePointerInPoison


class _ValidateRedZonesOnly(SlubLayer):
    def _debug_areas(self, cache: SlabCache, addr: int, red: int, *, poison: bool) -> list[tuple[str, int, bytes]]:
        if poison and red == self.red_inactive and self._validating:
            return super()._debug_areas(cache, addr, red, poison=False)
        return super()._debug_areas(cache, addr, red, poison=poison)

    _validating = False

    def kmem_cache_validate(self, cid: int) -> None:
        self._validating = True
        try:
            super().kmem_cache_validate(cid)
        finally:
            self._validating = False


class ValidateRedZonesOnly(_SlabMutant):
    """validate_slab_cache checks red zones but not a free object's poison: a use-after-free write goes unseen."""

    layer = _ValidateRedZonesOnly


class _ValidateNoRestore(SlubLayer):
    def kmem_cache_validate(self, cid: int) -> None:
        write = self.backend.write_phys
        self.backend.write_phys = lambda a, d: None  # type: ignore[method-assign]
        try:
            super().kmem_cache_validate(cid)
        finally:
            self.backend.write_phys = write  # type: ignore[method-assign]


class ValidateNoRestore(_SlabMutant):
    """validate_slab_cache reports an overwritten red zone or poison but leaves the bytes as they are."""

    layer = _ValidateNoRestore


class _NoLeftRedZone(SlubLayer):
    def _debug_areas(self, cache: SlabCache, addr: int, red: int, *, poison: bool) -> list[tuple[str, int, bytes]]:
        return [a for a in super()._debug_areas(cache, addr, red, poison=poison) if a[0] != "Left Redzone"]


class NoLeftRedZone(_SlabMutant):
    """SLAB_RED_ZONE guards only the end of an object: an underrun into the byte before it goes unseen."""

    layer = _NoLeftRedZone


class _SlabPageFreeAccepted(SlubLayer):
    def check_page_free(self, pfn: int, order: int) -> None:
        if pfn in self._slab_of_pfn:
            cache, slab = self._slab_of_pfn[pfn]
            for p in range(slab.pfn, slab.pfn + (1 << slab.order)):
                del self._slab_of_pfn[p]
            del cache.slabs[slab.pfn]
            cache.partial.pop(slab.pfn, None)
            return
        super().check_page_free(pfn, order)


class SlabPageFreeAccepted(_SlabMutant):
    """free_pages of a slab page frees it (the page allocator has no page-type check) and the slab layer lets it go."""

    layer = _SlabPageFreeAccepted


class _LargeKeptAfterPageFree(SlubLayer):
    def check_page_free(self, pfn: int, order: int) -> None:
        if pfn in self._slab_of_pfn:
            super().check_page_free(pfn, order)


class LargeKeptAfterPageFree(_SlabMutant):
    """free_pages of a large kmalloc block gives the pages back, but kmalloc still counts the block as its own."""

    layer = _LargeKeptAfterPageFree


class _NoOrderFallback(SlubLayer):
    def _new_slab(self, cache: SlabCache, gfp: int) -> Slab | None:
        min_order, cache.min_order = cache.min_order, cache.order
        try:
            return super()._new_slab(cache, gfp)
        finally:
            cache.min_order = min_order


class NoOrderFallback(_SlabMutant):
    """allocate_slab tries only the preferred slab order: with memory fragmented, kmalloc fails although a smaller slab would do."""

    layer = _NoOrderFallback


class _MergeDebugCaches(SlubLayer):
    def _find_mergeable(self, size: int, align: int, flags: int) -> SlabCache | None:
        return super()._find_mergeable(size, align, flags & ~SLAB_NEVER_MERGE)


class MergeDebugCaches(_SlabMutant):
    """find_mergeable skips the SLAB_NEVER_MERGE test of the request: a red-zoned or SLAB_NO_MERGE cache becomes an alias of a plain one."""

    layer = _MergeDebugCaches


class _KsizeIsStride(SlubLayer):
    def ksize(self, addr: int) -> int:
        cache = self._live.get(addr)
        return cache.size if cache is not None else super().ksize(addr)


class KsizeIsStride(_SlabMutant):
    """ksize returns s->size for every cache: a red-zoned or poisoned object's ksize reaches into its red zone and metadata."""

    layer = _KsizeIsStride


class _KreallocMoveNoMightSleep(SlubLayer):
    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        might_sleep = self.env.might_sleep
        self.env.might_sleep = lambda: None  # type: ignore[method-assign]
        try:
            return super().krealloc(addr, size, gfp)
        finally:
            self.env.might_sleep = might_sleep  # type: ignore[method-assign]


class KreallocMoveNoMightSleep(_SlabMutant):
    """krealloc allocates its new object without might_alloc(): a blocking krealloc that moves in atomic context says nothing."""

    layer = _KreallocMoveNoMightSleep


_SLAB_TABLE: Final[tuple[tuple[str, type[FastBuddy], str, str], ...]] = (
    ("size-class-no-96", SizeClassNo96, "KMALLOC-SIZE-CLASS", "tiny"),
    ("bucket-too-small", BucketTooSmall, "KSIZE-COVERS", "tiny"),
    ("zero-size-null", ZeroSizeNull, "KMALLOC-ZERO-SIZE", "tiny"),
    ("ksize-zero-size-ptr", KsizeZeroSizePtr, "KFREE-NULL", "tiny"),
    ("large-order-clamped", LargeOrderClamped, "KMALLOC-MAX-SIZE", "tiny"),
    ("array-overflow-wraps", ArrayOverflowWraps, "KMALLOC-ARRAY-OVERFLOW", "tiny"),
    ("hwcache-align-ignored", HwcacheAlignIgnored, "SLAB-CACHE-ALIGN", "tiny"),
    ("dma-cache-ignored", DmaCacheIgnored, "SLAB-ZONE-ELIGIBLE", "tiny"),
    ("kzalloc-not-zeroed", KzallocNotZeroed, "KZALLOC-ZERO", "tiny"),
    ("krealloc-no-copy", KreallocNoCopy, "KREALLOC", "tiny"),
    ("slab-double-free-unchecked", SlabDoubleFreeUnchecked, "SLAB-DOUBLE-FREE", "tiny"),
    ("wrong-cache-unchecked", WrongCacheUnchecked, "SLAB-WRONG-CACHE", "tiny"),
    ("destroy-busy-frees", DestroyBusyFrees, "SLAB-DESTROY-BUSY", "tiny"),
    ("refill-with-gfp-kernel", RefillWithGfpKernel, "CTX-NO-SLEEP", "tiny"),
    ("interior-free-accepted", InteriorFreeAccepted, "SLAB-INVALID-FREE", "tiny"),
    ("gfp-bug-only-on-new-slab", GfpBugOnlyOnNewSlab, "KMALLOC-GFP-BUG", "tiny"),
    ("cache-create-no-might-sleep", CacheCreateNoMightSleep, "SLAB-CACHE-MIGHT-SLEEP", "tiny"),
    ("slabs-omit-large", SlabsOmitLarge, "SLAB-INTROSPECT", "tiny"),
    ("emptiest-first", EmptiestFirst, "SLAB-PARTIAL-FIRST", "tiny"),
    ("shrink-keeps-empty", ShrinkKeepsEmpty, "SLAB-SHRINK-RELEASES", "tiny"),
    ("on-slab-header", OnSlabHeader, "KMALLOC-ALIGN", "tiny"),
    ("slab-pages-from-highmem", SlabPagesFromHighmem, "SLAB-LOWMEM", "tiny-highmem"),
    ("stride-too-small", StrideTooSmall, "SLAB-NO-OVERLAP", "tiny"),
    ("free-pointer-in-neighbour", FreePointerInNeighbour, "SLAB-CONTENTS-INTACT", "tiny"),
    ("no-poison-on-free", NoPoisonOnFree, "SLAB-POISON", "tiny"),
    ("free-pointer-in-poison", FreePointerInPoison, "SLAB-POISON", "tiny"),
    ("validate-red-zones-only", ValidateRedZonesOnly, "SLAB-POISON-CHECK", "tiny"),
    ("validate-no-restore", ValidateNoRestore, "SLAB-REDZONE-CHECK", "tiny"),
    ("no-left-red-zone", NoLeftRedZone, "SLAB-REDZONE-CHECK", "tiny"),
    ("slab-page-free-accepted", SlabPageFreeAccepted, "SLAB-PAGE-BAD-FREE", "tiny"),
    ("large-kept-after-page-free", LargeKeptAfterPageFree, "SLAB-INTROSPECT", "tiny"),
    ("no-order-fallback", NoOrderFallback, "SLAB-NO-SPURIOUS-FAIL", "tiny"),
    ("merge-debug-caches", MergeDebugCaches, "SLAB-CACHE-MERGE", "tiny"),
    ("ksize-is-stride", KsizeIsStride, "KSIZE-COVERS", "tiny"),
    ("krealloc-move-no-might-sleep", KreallocMoveNoMightSleep, "CTX-MIGHT-SLEEP", "tiny"),
)

#: Rules the same slip breaks as directly as its own, whichever a run meets first (measured with `kmemspec mutants`).
_ALSO: Final[dict[str, tuple[str, ...]]] = {
    # in atomic context the GFP_KERNEL refill is first seen as might_sleep's splat, which the caller's GFP_ATOMIC did not earn
    "refill-with-gfp-kernel": ("IUT-NO-FALSE-REPORT",),
    # the wrapped product goes on into kmalloc, which reports the caller's zone flags; the kernel returned NULL first
    "array-overflow-wraps": ("IUT-NO-FALSE-REPORT",),
    # the misfiled block is handed out misaligned, over a live one or over a hole (a __get_free_pages address outside
    # lowmem), or the freed block is lost and a request it should serve fails
    "merge-head-from-buddy": ("BUDDY-ALIGN", "BUDDY-NO-OVERLAP", "PAGE-RAM-ONLY", "API-LOWMEM-ADDRESS", "BUDDY-NO-SPURIOUS-FAIL"),
    # the object too small for its request runs past its slot when placed, before ksize is asked: into the
    # neighbour, or past its slab's last page
    "bucket-too-small": ("SLAB-NO-OVERLAP", "SLAB-INTROSPECT", "SLAB-LOWMEM", "KREALLOC"),  # krealloc trusts the small ksize
    # the clamped block is then allocated as asked, with its might_sleep, where the kernel returned NULL before it
    "large-order-clamped": ("IUT-NO-FALSE-REPORT",),
    # the free pointer it writes over the poison is what its own validate then misses (poison or left red zone)
    "free-pointer-in-poison": ("SLAB-POISON-CHECK", "SLAB-REDZONE-CHECK"),
    # the free pointer it writes into the neighbour's slot is what its own validate then reports (as that slot's
    # poison when the neighbour is free too)
    "free-pointer-in-neighbour": ("IUT-NO-FALSE-REPORT",),
    # the refill falls back to no smaller order, for __GFP_NOFAIL requests too
    "no-order-fallback": ("NOFAIL-NEVER-NULL",),
    # overlapping neighbours: one object's bytes are another's contents or red zone, which its validate reports;
    # the first object's left red zone lands in the page block before the slab
    "stride-too-small": ("SLAB-CONTENTS-INTACT", "SLAB-REDZONE-CHECK", "IUT-NO-FALSE-REPORT", "PAGE-CONTENTS-INTACT"),
    # krealloc trusts the too-large ksize and stays in place past the object
    "ksize-is-stride": ("KREALLOC",),
    # the unrestored bytes are found again by the next validate, as poison or red zone
    "validate-no-restore": ("SLAB-POISON-CHECK",),
}

MUTANTS: Final[dict[str, Mutant]] = {
    name: Mutant(name, cls, rule_id, machine, " ".join((cls.__doc__ or "").split()), _ALSO.get(name, ()))
    for name, cls, rule_id, machine in _TABLE + _SLAB_TABLE
}
