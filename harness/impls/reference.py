"""`reference`: the oracle itself plus a simple deterministic placement. Slow and obviously correct.

It serves a request exactly when the buddy oracle (refmodel/page_alloc.py)
says it must succeed, from the lowest-addressed free block of the smallest
sufficient order in the first zone of the zonelist that passes the
low-watermark check (mm/page_alloc.c get_page_from_freelist), and reports
every misuse the oracle names. Memory is a sparse page store.

Its slab layer is the simplest correct one: every object gets page blocks
of its own (get_order of its bucket), so alignment, zones and overlap hold
by construction, and the slab oracle (refmodel/slab.py) classifies every
kfree. It shows those blocks through ``slabs()``. An object of a
SLAB_RED_ZONE cache sits 8 bytes (rounded up to its alignment) into its
block, with an 8-byte red zone after it.
"""

from __future__ import annotations

from ...refmodel.context import Context
from ...refmodel.errors import BadFree, CacheBusy, InvalidGfp, SlabCorruption, UnexpectedGfp
from ...refmodel.gfp import GFP, GFP_INT, gfp_zone_bad, gfpflags_allow_blocking
from ...refmodel.machine import Machine
from ...refmodel.kmalloc import ZERO_SIZE_PTR, kmalloc_max_cache_size, kmalloc_max_size, kmalloc_size_roundup
from ...refmodel.objects import SlabModel
from ...refmodel.page_alloc import Outcome, PageAllocModel, get_order
from ...refmodel.rules import RULES
from ...refmodel.slab import GFP_SLAB_BUG_MASK, GFP_SLAB_KEEP, slab_gfp_bug
from ...refmodel.slab_debug import object_poison
from ..protocol import Env
from ._memory import SparseMemory


_RED = 8  # red zone bytes on either side of a SLAB_RED_ZONE object
_RED_ACTIVE = 0xCC  # SLUB_RED_ACTIVE (include/linux/poison.h)


class ReferenceAllocator:
    """The model as an allocator. Claims every page detection."""

    capabilities = frozenset({"pages", "get_free_pages", "memory", "free_area", "kmalloc", "slab", "slab_info", "slab_debug"})
    claims = frozenset(r.id for r in RULES if r.subsystem in ("pages", "kmalloc", "slab", "context") and r.needs_claim)

    def __init__(self, machine: Machine, env: Env) -> None:
        self.machine = machine
        self.env = env
        self.model = PageAllocModel(machine)
        self.slab = SlabModel(machine, self.model, exact=True)  # its page model holds every page its objects take
        self.memory = SparseMemory(machine.page_size)
        self._blocks: dict[int, tuple[int, int, int]] = {}  # object address -> (cache or 0, pfn, order)
        self._block_at: dict[int, tuple[int, int]] = {}  # first pfn -> (object address, order)
        self._next_cid = 1

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        return self._alloc(gfp, order, logical=False)

    def free_pages(self, pfn: int, order: int) -> None:
        block = self._block_at.get(pfn)
        if block is not None and block[1] == order:
            raise BadFree(f"Bad page state: pfn {pfn:#x} is the order-{order} block of the slab object at {block[0]:#x}")
        e = self.model.expect_free(pfn, order)
        if e.report is not None:
            raise e.report(e.misuse)
        self.model.adopt_free(pfn, order)

    def get_free_pages(self, gfp: int, order: int) -> int:
        pfn = self._alloc(gfp & ~GFP.HIGHMEM, order, logical=True)
        return 0 if pfn is None else self.machine.pfn_to_virt(pfn)

    def free_pages_addr(self, addr: int, order: int) -> None:
        e, pfn = self.model.expect_free_addr(addr, order)
        if e.report is not None:
            raise e.report(e.misuse)
        if pfn is not None:
            self.model.adopt_free(pfn, order)

    def read_phys(self, phys_addr: int, length: int) -> bytes:
        return self.memory.read(phys_addr, length)

    def write_phys(self, phys_addr: int, data: bytes) -> None:
        self.memory.write(phys_addr, data)

    def free_area(self) -> list[tuple[int, int, int]]:
        return self.model.free_rows()

    def _alloc(self, gfp: int, order: int, *, logical: bool) -> int | None:
        if gfp_zone_bad(gfp):
            raise InvalidGfp(f"gfp {gfp:#x} sets more than one zone modifier")
        if gfpflags_allow_blocking(gfp):
            self.env.might_sleep()
        e = self.model.expect_alloc(gfp, order, logical=logical)
        if e.outcome is not Outcome.MUST_SUCCEED:
            return None
        pfn = self._place(gfp, order, logical)
        self.model.adopt_alloc(gfp, order, pfn)
        if gfp & GFP.ZERO:
            self.memory.zero_pages(pfn, 1 << order)
        return pfn

    def _place(self, gfp: int, order: int, logical: bool) -> int:
        high = self.model.highest_zoneidx(gfp)
        zones = [z for z in self.model.eligible_zones(gfp) if self.model.has_free_block(z, order)]
        if logical:
            zones = [z for z in zones if self.machine.zone(z).end_pfn <= self.machine.max_low_pfn]
        # The fast path's low mark, then the slow path's retry at min (as the flags lower it), then any free block.
        ok = ([z for z in zones if self.model.watermark_ok(z, order, high)]
              or [z for z in zones if self.model.min_watermark_ok(z, order, high, gfp)] or zones)
        area = self.model.free_area[ok[0]]
        return next(pfn for k in range(order, self.model.max_order + 1) if (pfn := area.first(k)) is not None)


    # -- kmalloc and the slab layer: one page block per object ----------------------------

    def kmalloc(self, size: int, gfp: int) -> int | None:
        if size == 0:
            return ZERO_SIZE_PTR
        if size > kmalloc_max_size(self.machine):
            return None  # refused by the page allocator before might_alloc()
        if gfpflags_allow_blocking(gfp):
            self.env.might_sleep()
        if slab_gfp_bug(gfp):
            self.env.report(UnexpectedGfp(f"Unexpected gfp: {gfp & GFP_SLAB_BUG_MASK:#x}. Fixing up to gfp: {gfp & ~GFP_SLAB_BUG_MASK:#x}. Fix your code!"))
        return self._object(kmalloc_size_roundup(size, self.machine), size, gfp & ~GFP_SLAB_BUG_MASK, cid=None)

    def kzalloc(self, size: int, gfp: int) -> int | None:
        return self.kmalloc(size, gfp | GFP.ZERO)

    def kmalloc_array(self, n: int, size: int, gfp: int) -> int | None:
        if n * size >= 1 << self.machine.word_bits:
            return None
        return self.kmalloc(n * size, gfp)

    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        if addr <= ZERO_SIZE_PTR:
            return self.kmalloc(size, gfp)
        if size == 0:
            self.kfree(addr)
            return ZERO_SIZE_PTR
        old = self.slab.objects[addr]
        new = self.kmalloc(size, gfp)
        if new is None:
            return None
        keep = min(old.size, size)
        self.memory.write(self.machine.virt_to_phys(new), self.memory.read(self.machine.virt_to_phys(addr), keep))
        self.kfree(addr)
        return new

    def ksize(self, addr: int) -> int:
        if addr <= ZERO_SIZE_PTR:
            return 0
        obj = self.slab.objects[addr]
        return kmalloc_size_roundup(obj.alloc_size, self.machine) if obj.cache is None else self.slab.caches[obj.cache].object_size

    def kfree(self, addr: int) -> None:
        self._free_object(addr, None)

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> int | None:
        self.env.might_sleep()
        cid, self._next_cid = self._next_cid, self._next_cid + 1
        self.slab.adopt_cache(cid, name, size, align, flags)
        return cid

    def kmem_cache_alloc(self, cache: int, gfp: int) -> int | None:
        if gfpflags_allow_blocking(gfp):
            self.env.might_sleep()
        c = self.slab.caches[cache]
        pad = self._red_pad(cache)
        size = max(pad + c.object_size + (_RED if pad else 0), c.align)
        # new_slab keeps only the caller's reclaim flags: the zone is the cache's.
        addr = self._object(size, c.object_size, (gfp & ~(GFP_INT.DMA | GFP_INT.DMA32 | GFP_INT.HIGHMEM)) | c.zone_gfp, cid=cache, pad=pad)
        if addr is not None:
            for start, data in self._debug_areas(cache, addr, gfp):
                self.memory.write(self.machine.virt_to_phys(start), data)
        return addr

    def _red_pad(self, cache: int) -> int:
        c = self.slab.caches[cache]
        return -(-_RED // c.align) * c.align if c.red_zoned else 0

    def _debug_areas(self, cache: int, addr: int, gfp: int) -> list[tuple[int, bytes]]:
        """What a live object's surroundings hold: its red zones, and its poison if it is new and not zeroed."""
        c = self.slab.caches[cache]
        areas = [(addr - _RED, bytes([_RED_ACTIVE]) * _RED), (addr + c.object_size, bytes([_RED_ACTIVE]) * _RED)] if c.red_zoned else []
        if c.poisoned and not gfp & GFP.ZERO:
            areas.append((addr, object_poison(c.object_size)))
        return areas

    def kmem_cache_validate(self, cache: int) -> None:
        """Every live object's red zones (free objects give their pages back at once); report and restore."""
        for addr in sorted(self.slab.caches[cache].live):
            for start, want in self._debug_areas(cache, addr, GFP_INT.ZERO):
                got = self.memory.read(self.machine.virt_to_phys(start), len(want))
                if got != want:
                    self.env.report(SlabCorruption(f"red zone at {start:#x} of the object at {addr:#x} overwritten"))
                    self.memory.write(self.machine.virt_to_phys(start), want)

    def kmem_cache_free(self, cache: int, addr: int) -> None:
        self._free_object(addr, cache)

    def kmem_cache_destroy(self, cache: int) -> None:
        self.env.might_sleep()
        e = self.slab.expect_cache_destroy(cache, Context.PROCESS)
        if e.report is CacheBusy:
            self.env.report(CacheBusy(e.misuse))
            return
        self.slab.adopt_destroy(cache)

    def kmem_cache_shrink(self, cache: int) -> None:
        self.env.might_sleep()  # nothing to give back: no object shares its pages

    def slabs(self) -> list[tuple[int, int, int, int, int]]:
        return [(cid, pfn, order, 1, 1) for cid, pfn, order in self._blocks.values()]

    def _object(self, nbytes: int, size: int, gfp: int, *, cid: int | None, pad: int = 0) -> int | None:
        order = get_order(nbytes, self.machine.page_shift)
        if cid is None and nbytes > kmalloc_max_cache_size(self.machine):
            page_gfp = gfp | GFP.COMP  # a large kmalloc: the caller's flags
        else:  # new_slab: the caller's reclaim flags, the cache's zone
            page_gfp = (gfp & GFP_SLAB_KEEP) | (gfp & (GFP.DMA | GFP.DMA32)) | GFP.COMP
        e = self.model.expect_alloc(page_gfp, order, logical=True)
        if e.outcome is not Outcome.MUST_SUCCEED:
            return None
        pfn = self._place(page_gfp, order, logical=True)
        self.model.adopt_alloc(page_gfp, order, pfn)
        addr = self.machine.pfn_to_virt(pfn) + pad
        self.slab.adopt_object(addr, size, gfp, 0, cid=cid)
        self._blocks[addr] = (cid or 0, pfn, order)
        self._block_at[pfn] = (addr, order)
        if gfp & GFP.ZERO:
            self.memory.zero_pages(pfn, 1 << order)
        return addr

    def _free_object(self, addr: int, cid: int | None) -> None:
        e = self.slab.expect_kfree(addr, cid=cid)
        if e.report is not None:
            raise e.report(e.misuse)
        if addr <= ZERO_SIZE_PTR:
            return
        self.slab.adopt_free(addr)
        _, pfn, order = self._blocks.pop(addr)
        del self._block_at[pfn]
        self.model.adopt_free(pfn, order)



def make(machine: Machine, env: Env) -> ReferenceAllocator:
    return ReferenceAllocator(machine, env)
