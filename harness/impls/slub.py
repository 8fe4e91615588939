"""A SLUB-like slab layer and kmalloc, over any page allocator: ``fast`` uses it.

Written from mm/slub.c and mm/slab_common.c, independent of the oracle.
Each cache carves slabs of ``order`` pages into objects of ``size`` bytes
(object size rounded up to the cache's alignment); a slab keeps a free list
(a stack of object addresses), ``inuse``, and sits on its cache's partial
list while it has free objects. Allocation takes the head partial slab or a
new one (SLUB's fallback to the minimum order when the preferred order
fails); freeing pushes the object back and discards an empty slab once the
cache already keeps ``min_partial`` partial slabs. kmalloc picks a kmalloc
cache by size (and ``dma-kmalloc-*`` for GFP_DMA); above
KMALLOC_MAX_CACHE_SIZE it takes a compound page block. alloc, free and
kfree's dispatch are O(1) plus the page allocator's cost. kmem_cache_create
merges a compatible request into a live cache (an alias: the same id, one
more reference) unless ``merge`` is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

from ...refmodel.errors import BadFree, CacheBusy, DoubleFree, InvalidFree, SlabCorruption, UnexpectedGfp, WrongCache
from ...refmodel.gfp import GFP_INT
from ...refmodel.kmalloc import ZERO_SIZE_PTR, kmalloc_bucket, kmalloc_max_cache_size, kmalloc_max_size
from ...refmodel.machine import Machine
from ...refmodel.page_alloc import get_order
from ...refmodel.slab import GFP_SLAB_BUG_MASK, GFP_SLAB_KEEP, SLAB_MERGE_SAME, SLAB_NEVER_MERGE, SlabFlag, calculate_alignment
from ...refmodel.slab_debug import object_poison
from ..protocol import Env

SLUB_MAX_ORDER: Final = 3  # PAGE_ALLOC_COSTLY_ORDER (mm/slub.c slub_max_order)
SLUB_RED_INACTIVE: Final = 0xBB  # include/linux/poison.h
SLUB_RED_ACTIVE: Final = 0xCC


class PageBackend(Protocol):
    """What the slab layer needs from a page allocator: lowmem blocks, their release, and memory."""

    def slab_alloc_pages(self, gfp: int, order: int) -> int | None: ...
    def slab_free_pages(self, pfn: int, order: int) -> None: ...
    def write_phys(self, phys_addr: int, data: bytes) -> None: ...
    def read_phys(self, phys_addr: int, length: int) -> bytes: ...


@dataclass
class Slab:
    """``order`` pages at ``pfn`` carved into objects; ``free`` is the freelist (a stack of addresses)."""

    pfn: int
    order: int
    base: int
    free: list[int]
    inuse: int = 0


@dataclass
class SlabCache:
    """struct kmem_cache, reduced to what placement needs (mm/slab.h)."""

    cid: int
    name: str
    object_size: int
    size: int  # the stride: the slot (red zones and all) rounded up to align
    align: int
    flags: int
    order: int  # oo: the preferred slab order
    min_order: int  # min: get_order(size), SLUB's fallback
    zone_gfp: int
    kmalloc: bool = False
    red_left_pad: int = 0  # SLAB_RED_ZONE: the left red zone before each object
    inuse: int = 0  # the object and its right red zone (s->inuse)
    poison: bool = False  # __OBJECT_POISON
    slabs: dict[int, Slab] = field(default_factory=dict)  # first pfn -> slab
    partial: dict[int, None] = field(default_factory=dict)  # slabs with a free object, in list order
    live: int = 0
    refcount: int = 1  # kmem_cache_create calls merged into it; 0 once destroyed with objects left (unlinked)

    def objects_per_slab(self, order: int, page_shift: int) -> int:
        return (1 << (order + page_shift)) // self.size

    @property
    def debug(self) -> bool:
        return bool(self.red_left_pad or self.poison)


class SlubLayer:
    """kmalloc and kmem_cache_* over ``backend``; misuse is detected as SLUB's debug checks would."""

    #: Empty slabs kept per cache before further ones go back to the page allocator (MIN_PARTIAL).
    min_partial = 5
    #: Report UnexpectedGfp on every kmalloc with __GFP_HIGHMEM / __GFP_DMA32, not only on a new slab.
    strict_gfp_report = True
    #: Which partial slab an allocation takes: the list head (SLUB) or, if set, the fullest.
    prefer_fullest = False
    #: What red zones hold around a live and a free object.
    red_active, red_inactive = SLUB_RED_ACTIVE, SLUB_RED_INACTIVE
    #: Merge a compatible kmem_cache_create into a live cache, as SLUB does by default; False is slab_nomerge.
    merge = True

    def __init__(self, machine: Machine, env: Env, backend: PageBackend) -> None:
        self.machine, self.env, self.backend = machine, env, backend
        self._shift, self._page_size, self._offset = machine.page_shift, machine.page_size, machine.page_offset
        self.caches: dict[int, SlabCache] = {}
        self._kmalloc_caches: dict[tuple[int, bool], SlabCache] = {}
        self._slab_of_pfn: dict[int, tuple[SlabCache, Slab]] = {}  # every page of every slab
        self._live: dict[int, SlabCache] = {}  # live slab object -> its cache
        self._large: dict[int, int] = {}  # live large kmalloc address -> order
        self._next_cid = 1

    # -- kmalloc ------------------------------------------------------------------------

    def kmalloc(self, size: int, gfp: int) -> int | None:
        """__do_kmalloc_node: 0 -> ZERO_SIZE_PTR; large -> pages; else the kmalloc cache for the size."""
        if size == 0:
            return ZERO_SIZE_PTR
        gfp = int(gfp)
        if size > kmalloc_max_cache_size(self.machine):
            return self._kmalloc_large(size, gfp)  # the page allocator runs might_alloc()
        self._might_alloc(gfp)
        if gfp & GFP_SLAB_BUG_MASK and self.strict_gfp_report:
            self.env.report(UnexpectedGfp(f"Unexpected gfp: {gfp & GFP_SLAB_BUG_MASK:#x}. Fixing up to gfp: {gfp & ~GFP_SLAB_BUG_MASK:#x}. Fix your code!"))
            gfp &= ~GFP_SLAB_BUG_MASK
        return self._cache_alloc(self._kmalloc_cache(size, bool(gfp & GFP_INT.DMA)), gfp)

    def kzalloc(self, size: int, gfp: int) -> int | None:
        return self.kmalloc(size, int(gfp) | GFP_INT.ZERO)

    def kmalloc_array(self, n: int, size: int, gfp: int) -> int | None:
        """check_mul_overflow against a BITS_PER_LONG size_t (include/linux/slab.h kmalloc_array)."""
        total = n * size
        if total >> self.machine.word_bits:
            return None
        return self.kmalloc(total, gfp)

    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        """krealloc: in place when the new size fits ksize, else a new object with the old contents."""
        if addr <= ZERO_SIZE_PTR:
            return self.kmalloc(size, gfp)
        if size == 0:
            self.kfree(addr)
            return ZERO_SIZE_PTR
        old = self.ksize(addr)
        if size <= old:
            return addr
        new = self.kmalloc(size, gfp)
        if new is None:
            return None
        self.backend.write_phys(new - self._offset, self.read(addr, old))
        self.kfree(addr)
        return new

    def ksize(self, addr: int) -> int:
        """__ksize: the cache's object size, or the large block's size; 0 for NULL and ZERO_SIZE_PTR."""
        if addr <= ZERO_SIZE_PTR:
            return 0
        cache = self._live.get(addr)
        if cache is not None:
            return cache.size if cache.kmalloc else cache.object_size
        order = self._large.get(addr)
        if order is not None:
            return self._page_size << order
        raise InvalidFree(f"ksize({addr:#x}): not a live object")

    def kfree(self, addr: int) -> None:
        """kfree: NULL/ZERO_SIZE_PTR do nothing; a slab object goes back to its slab; a large one to the buddy."""
        if addr <= ZERO_SIZE_PTR:
            return
        owner = self._slab_at(addr)
        if owner is not None:
            self._slab_free(owner[0], owner[1], addr)
            return
        order = self._large.pop(addr, None)
        if order is not None:
            self.backend.slab_free_pages((addr - self._offset) >> self._shift, order)
            return
        raise InvalidFree(f"kfree({addr:#x}): Not a kmalloc allocation (no slab page, no large kmalloc there)")

    def _kmalloc_large(self, size: int, gfp: int) -> int | None:
        """___kmalloc_large_node: kmalloc_fix_flags, then a compound block of get_order(size) pages."""
        if size > kmalloc_max_size(self.machine):
            return None
        if gfp & GFP_SLAB_BUG_MASK:
            self.env.report(UnexpectedGfp(f"Unexpected gfp: {gfp & GFP_SLAB_BUG_MASK:#x}. Fix your code!"))
            gfp &= ~GFP_SLAB_BUG_MASK
        order = get_order(size, self._shift)
        pfn = self.backend.slab_alloc_pages(gfp | GFP_INT.COMP, order)
        if pfn is None:
            return None
        addr = self._offset + (pfn << self._shift)
        self._large[addr] = order
        return addr

    def _kmalloc_cache(self, size: int, dma: bool) -> SlabCache:
        """kmalloc_slab(): kmalloc-<n>, or dma-kmalloc-<n> for GFP_DMA (created on first use)."""
        bucket = kmalloc_bucket(size)
        cache = self._kmalloc_caches.get((bucket, dma))
        if cache is None:
            # create_boot_cache: align to the largest power of two dividing the size.
            cache = self._new_cache(f"{'dma-' if dma else ''}kmalloc-{bucket}", bucket, bucket & -bucket,
                                    int(SlabFlag.CACHE_DMA) if dma else 0, kmalloc=True)
            self._kmalloc_caches[(bucket, dma)] = cache
        return cache

    # -- kmem_cache -----------------------------------------------------------------------

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> int | None:
        self.env.might_sleep()  # mutex_lock(&slab_mutex)
        if size <= 0 or size > kmalloc_max_size(self.machine):
            return None
        alias = self._find_mergeable(size, align, flags) if self.merge else None
        if alias is not None:  # __kmem_cache_alias
            alias.refcount += 1
            alias.object_size = max(alias.object_size, size)
            alias.inuse = max(alias.inuse, _align(size, 8))
            return alias.cid
        cache = self._new_cache(name, size, align, flags)
        self.caches[cache.cid] = cache
        return cache.cid

    def _find_mergeable(self, size: int, align: int, flags: int) -> SlabCache | None:
        """find_mergeable: the oldest live cache whose stride takes the request with less than a word to spare."""
        if flags & SLAB_NEVER_MERGE:
            return None
        size = _align(size, 8)
        align = calculate_alignment(flags, align, size)
        size = _align(size, align)
        for s in self.caches.values():  # in creation order: slab_caches walked from its tail
            if s.refcount <= 0 or s.flags & SLAB_NEVER_MERGE or size > s.size:
                continue
            if (flags & SLAB_MERGE_SAME) != (s.flags & SLAB_MERGE_SAME) or s.size & (align - 1) or s.size - size >= 8:
                continue
            return s
        return None

    def kmem_cache_alloc(self, cid: int, gfp: int) -> int | None:
        gfp = int(gfp)
        self._might_alloc(gfp)
        return self._cache_alloc(self.caches[cid], gfp & ~GFP_SLAB_BUG_MASK)

    def kmem_cache_free(self, cid: int, addr: int) -> None:
        owner = self._slab_at(addr)
        cache = self.caches[cid]
        if owner is None:
            raise InvalidFree(f"kmem_cache_free({cache.name}, {addr:#x}): Object is not a Slab page!")
        if owner[0] is not cache:
            raise WrongCache(f"kmem_cache_free({cache.name}, {addr:#x}): object belongs to different cache {owner[0].name}")
        self._slab_free(cache, owner[1], addr)

    def kmem_cache_destroy(self, cid: int) -> None:
        self.env.might_sleep()
        cache = self.caches[cid]
        cache.refcount -= 1
        if cache.refcount:
            return
        if cache.live:
            self.env.report(CacheBusy(f"{cache.name}: Slab cache still has objects when called from kmem_cache_destroy ({cache.live} objects remaining)"))
            return
        for pfn in list(cache.slabs):
            self._discard(cache, cache.slabs[pfn])
        del self.caches[cid]

    def kmem_cache_shrink(self, cid: int) -> int:
        """__kmem_cache_shrink: every empty slab goes back, whatever min_partial says."""
        self.env.might_sleep()
        cache = self.caches[cid]
        for slab in [s for s in cache.slabs.values() if s.inuse == 0]:
            self._discard(cache, slab)
        return 0 if not cache.slabs else 1

    # -- the slab machinery --------------------------------------------------------------------

    def _new_cache(self, name: str, object_size: int, align: int, flags: int, *, kmalloc: bool = False) -> SlabCache:
        """calculate_sizes: the object, its right red zone, the trailing word and the left red zone, rounded up to align."""
        align = calculate_alignment(flags, align, object_size)
        inuse = _align(object_size, 8)
        red_left_pad = 0
        slot = inuse
        if flags & SlabFlag.RED_ZONE:
            if inuse == object_size:
                inuse += 8
            red_left_pad = _align(8, align)
            slot = inuse + 8 + red_left_pad
        stride = _align(slot, align)
        min_order = get_order(stride, self._shift)
        order = self._calculate_order(stride, min_order)
        zone = GFP_INT.DMA if flags & SlabFlag.CACHE_DMA else GFP_INT.DMA32 if flags & SlabFlag.CACHE_DMA32 else 0
        poison = bool(flags & SlabFlag.POISON) and not flags & SlabFlag.TYPESAFE_BY_RCU
        cache = SlabCache(self._next_cid, name, object_size, stride, align, flags, order, min_order, zone, kmalloc,
                          red_left_pad=red_left_pad, inuse=inuse, poison=poison)
        self._next_cid += 1
        return cache

    def _calculate_order(self, size: int, min_order: int) -> int:
        """calculate_order: the smallest order holding min_objects objects with little waste, at most slub_max_order."""
        min_objects = 4 * (max(1, self.machine.nr_cpus).bit_length() + 1)
        max_order = min(SLUB_MAX_ORDER, self.machine.max_page_order)
        for fraction in (16, 8, 4, 2):
            for order in range(min_order, max_order + 1):
                slab_size = self._page_size << order
                if slab_size // size >= min_objects and slab_size % size <= slab_size // fraction:
                    return order
        return min(max(min_order, 0), self.machine.max_page_order)

    def _might_alloc(self, gfp: int) -> None:
        """slab_pre_alloc_hook: might_alloc(gfp) (include/linux/sched/mm.h)."""
        if gfp & GFP_INT.DIRECT_RECLAIM:
            self.env.might_sleep()

    def _cache_alloc(self, cache: SlabCache, gfp: int) -> int | None:
        slab = self._partial_slab(cache)
        if slab is None:
            slab = self._new_slab(cache, gfp)
            if slab is None:
                return None
        addr = slab.free.pop()
        slab.inuse += 1
        if not slab.free:
            cache.partial.pop(slab.pfn, None)
        self._live[addr] = cache
        cache.live += 1
        if cache.debug:
            self._init_object(cache, addr, self.red_active)
        if gfp & GFP_INT.ZERO:
            self.backend.write_phys(addr - self._offset, bytes(cache.object_size))
        return addr

    def _partial_slab(self, cache: SlabCache) -> Slab | None:
        if not cache.partial:
            return None
        if self.prefer_fullest:
            return max((cache.slabs[p] for p in cache.partial), key=lambda s: (s.inuse, -s.pfn))
        return cache.slabs[next(iter(cache.partial))]

    def _new_slab(self, cache: SlabCache, gfp: int) -> Slab | None:
        """allocate_slab: the preferred order without retrying hard, then the minimum order with the caller's flags."""
        base = (gfp & GFP_SLAB_KEEP) | cache.zone_gfp | GFP_INT.COMP
        order, pfn = cache.order, None
        if cache.order > cache.min_order:
            first = (base | GFP_INT.NOWARN | GFP_INT.NORETRY) & ~GFP_INT.NOFAIL
            if first & GFP_INT.DIRECT_RECLAIM:  # no reclaim and no reserves for the preferred order: the min order will do
                first = (first | GFP_INT.NOMEMALLOC) & ~GFP_INT.RECLAIM
            pfn = self.backend.slab_alloc_pages(first, order)
        if pfn is None:
            order = cache.min_order
            if gfp & GFP_SLAB_BUG_MASK and not self.strict_gfp_report:
                self.env.report(UnexpectedGfp(f"Unexpected gfp: {gfp & GFP_SLAB_BUG_MASK:#x}. Fix your code!"))
            pfn = self.backend.slab_alloc_pages(base, order)
            if pfn is None:
                return None
        start = self._offset + (pfn << self._shift)
        n = cache.objects_per_slab(order, self._shift)
        slab = Slab(pfn, order, start, [start + i * cache.size + cache.red_left_pad for i in reversed(range(n))])
        if cache.debug:
            for addr in slab.free:
                self._init_object(cache, addr, self.red_inactive)
        cache.slabs[pfn] = slab
        cache.partial[pfn] = None
        for p in range(pfn, pfn + (1 << order)):
            self._slab_of_pfn[p] = (cache, slab)
        return slab

    def _slab_at(self, addr: int) -> tuple[SlabCache, Slab] | None:
        return self._slab_of_pfn.get((addr - self._offset) >> self._shift) if addr >= self._offset else None

    def _slab_free(self, cache: SlabCache, slab: Slab, addr: int) -> None:
        """slab_free with SLAB_CONSISTENCY_CHECKS: a valid object start, not already free."""
        off = addr - slab.base - cache.red_left_pad
        if off % cache.size or off // cache.size >= cache.objects_per_slab(slab.order, self._shift):
            raise InvalidFree(f"{cache.name}: Invalid object pointer {addr:#x}")
        if self._live.get(addr) is not cache:
            raise DoubleFree(f"{cache.name}: Object already free: {addr:#x}")
        del self._live[addr]
        cache.live -= 1
        if cache.debug:
            self._init_object(cache, addr, self.red_inactive)
        was_full = not slab.free
        slab.free.append(addr)
        slab.inuse -= 1
        if was_full:
            cache.partial[slab.pfn] = None
        if slab.inuse == 0 and sum(1 for p in cache.partial if cache.slabs[p].inuse == 0) > self.min_partial:
            self._discard(cache, slab)

    def _discard(self, cache: SlabCache, slab: Slab) -> None:
        """discard_slab: the pages go back to the page allocator."""
        order = slab.order
        for p in range(slab.pfn, slab.pfn + (1 << order)):
            del self._slab_of_pfn[p]
        del cache.slabs[slab.pfn]
        cache.partial.pop(slab.pfn, None)
        self.backend.slab_free_pages(slab.pfn, order)

    # -- debug caches: SLAB_RED_ZONE, SLAB_POISON --------------------------------------------

    def _debug_areas(self, cache: SlabCache, addr: int, red: int, *, poison: bool) -> list[tuple[str, int, bytes]]:
        """init_object's areas: (name, logical start, bytes) of the left red zone, the poison, the right red zone."""
        areas = []
        if cache.red_left_pad:
            areas.append(("Left Redzone", addr - cache.red_left_pad, bytes([red]) * cache.red_left_pad))
            areas.append(("Right Redzone", addr + cache.object_size, bytes([red]) * (cache.inuse - cache.object_size)))
        if cache.poison and poison:
            areas.append(("Poison", addr, object_poison(cache.object_size)))
        return areas

    def _init_object(self, cache: SlabCache, addr: int, red: int) -> None:
        """init_object (mm/slub.c): red zones to ``red``; the poison on alloc and on free alike."""
        for _, start, data in self._debug_areas(cache, addr, red, poison=True):
            self.backend.write_phys(start - self._offset, data)

    def kmem_cache_validate(self, cid: int) -> None:
        """validate_slab_cache: check every object's red zones (and a free object's poison); report and restore."""
        cache = self.caches[cid]
        if not cache.debug:
            return
        for slab in list(cache.slabs.values()):
            free = set(slab.free)
            for i in range(cache.objects_per_slab(slab.order, self._shift)):
                addr = slab.base + i * cache.size + cache.red_left_pad
                inactive = addr in free
                red = self.red_inactive if inactive else self.red_active
                for what, start, want in self._debug_areas(cache, addr, red, poison=inactive):
                    got = self.read(start, len(want))
                    if got != want:
                        bad = next(k for k in range(len(want)) if got[k] != want[k])
                        self.env.report(SlabCorruption(f"{cache.name}: {what} overwritten at {start + bad:#x}: "
                                                       f"first byte {got[bad]:#04x} instead of {want[bad]:#04x}"))
                        self.backend.write_phys(start - self._offset, want)  # restore_bytes

    # -- page blocks of the slab layer -----------------------------------------------------------

    def check_page_free(self, pfn: int, order: int) -> None:
        """free_pages on a block this layer holds: a slab page is a Bad page state; a large kmalloc block is let go."""
        owner = self._slab_of_pfn.get(pfn)
        if owner is not None:
            raise BadFree(f"Bad page state: pfn {pfn:#x} is a page of a {owner[0].name} slab (nonzero mapcount: page type slab)")
        self._large.pop(self._offset + (pfn << self._shift), None)

    def slabs(self) -> list[tuple[int, int, int, int, int]]:
        """Every block the layer holds: (cache id, 0 for kmalloc caches and large blocks, pfn, order, inuse, total)."""
        rows = [(0 if c.kmalloc else c.cid, s.pfn, s.order, s.inuse, c.objects_per_slab(s.order, self._shift))
                for c in (*self.caches.values(), *self._kmalloc_caches.values()) for s in c.slabs.values()]
        rows += [(0, (addr - self._offset) >> self._shift, order, 1, 1) for addr, order in self._large.items()]
        return rows

    def read(self, addr: int, n: int) -> bytes:
        return self.backend.read_phys(addr - self._offset, n)


SLAB_CAPABILITIES: Final = frozenset({"kmalloc", "slab", "slab_info", "slab_debug"})
#: SLUB's partial list may put an empty slab ahead of a partial one, so SLAB-PARTIAL-FIRST is not claimed.
SLAB_CLAIMS: Final = frozenset({"KMALLOC-SIZE-CLASS", "KMALLOC-GFP-BUG", "SLAB-DOUBLE-FREE", "SLAB-INVALID-FREE",
                                "SLAB-WRONG-CACHE", "SLAB-DESTROY-BUSY", "SLAB-CACHE-MIGHT-SLEEP", "SLAB-SHRINK-RELEASES",
                                "SLAB-POISON", "SLAB-POISON-CHECK", "SLAB-REDZONE-CHECK", "SLAB-PAGE-BAD-FREE", "SLAB-NO-SPURIOUS-FAIL"})


def _align(n: int, a: int) -> int:
    return -(-n // a) * a
