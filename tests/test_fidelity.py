"""Where the oracle once departed from the kernel (issue 11): each case forces the answer the kernel gives.

Each test drives a small implementation that differs from ``reference`` in one
answer, and checks that the suite judges that answer as the kernel's source does.
"""

import pytest

from conftest import free_starts
from kmemspec.harness import Lockstep, load_impl
from kmemspec.harness.impls.reference import ReferenceAllocator
from kmemspec.refmodel import ConformanceFailure, Context, load_machine
from kmemspec.refmodel.context import in_atomic
from kmemspec.refmodel.errors import SleepInAtomic, UnexpectedGfp
from kmemspec.refmodel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, ZoneType, gfpflags_allow_blocking
from kmemspec.refmodel.page_alloc import PageAllocModel
from kmemspec.refmodel.slab import SlabFlag


class _RaisesWarnings(ReferenceAllocator):
    """Raises the kernel's WARN-class reports (might_sleep in atomic context, kmalloc's Unexpected gfp) and returns nothing."""

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        if gfpflags_allow_blocking(gfp) and in_atomic(self.env.context):
            raise SleepInAtomic("sleeping function called from invalid context")
        return super().alloc_pages(gfp, order)

    def kmalloc(self, size: int, gfp: int) -> int | None:
        if gfp & (GFP.HIGHMEM | GFP.DMA32):
            raise UnexpectedGfp(f"Unexpected gfp: {gfp & (GFP.HIGHMEM | GFP.DMA32):#x}. Fix your code!")
        return super().kmalloc(size, gfp)


def _raises_warnings(machine, env):
    return _RaisesWarnings(machine, env)


def test_a_raised_might_sleep_report_does_not_excuse_a_nofail_null():
    # kernel/sched/core.c __might_resched only prints; __alloc_pages_slowpath then serves __GFP_NOFAIL.
    iut = Lockstep(_raises_warnings, "tiny")
    iut.set_context(Context.HARDIRQ)
    with pytest.raises(ConformanceFailure, match="NOFAIL-NEVER-NULL"):
        iut.alloc_pages(GFP_KERNEL | GFP.NOFAIL, 0)


class _RaisesWarningsUnclaimed(_RaisesWarnings):
    claims = ReferenceAllocator.claims - {"BUDDY-NO-SPURIOUS-FAIL"}


def test_a_raised_might_sleep_report_is_judged_as_a_report_and_a_null():
    # Where NULL is allowed, the raise passes as the report the kernel prints; where it is not, the NULL fails.
    iut = Lockstep(lambda m, env: _RaisesWarningsUnclaimed(m, env), "tiny")
    iut.set_context(Context.SOFTIRQ)
    assert iut.alloc_pages(GFP_KERNEL, 0) is None
    assert iut.coverage["CTX-MIGHT-SLEEP"] == 1 and not iut.failed
    iut = Lockstep(_raises_warnings, "tiny")
    iut.set_context(Context.SOFTIRQ)
    with pytest.raises(ConformanceFailure, match="BUDDY-NO-SPURIOUS-FAIL"):
        iut.alloc_pages(GFP_KERNEL, 0)


def test_a_raised_unexpected_gfp_does_not_excuse_a_null_kmalloc():
    # mm/slab_common.c kmalloc_fix_flags: the flags are fixed up and the allocation goes on.
    iut = Lockstep(_raises_warnings, "tiny")
    with pytest.raises(ConformanceFailure, match="SLAB-NO-SPURIOUS-FAIL|NOFAIL-NEVER-NULL"):
        iut.kmalloc(64, GFP_KERNEL | GFP.HIGHMEM | GFP.NOFAIL)


def test_x86_32_virt_addr_valid_rejects_vmalloc_and_fixmap_addresses():
    # arch/x86/mm/physaddr.c __virt_addr_valid (32-bit): not is_vmalloc_addr(), below FIXADDR_START, then pfn_valid().
    m = load_machine("x86_32")  # 2 GiB: lowmem to 0xf77fe000, vmalloc [0xf7ffe000, 0xff7fe000)
    assert m.virt_to_pfn(0xF8000000) is None and m.virt_to_pfn(m.vmalloc_start) is None
    assert m.virt_to_pfn(m.fixaddr_start) is None and m.virt_to_pfn(0xFFFFF000) is None
    # The 8 MiB gap above high_memory and the pkmap area above VMALLOC_END are not checked: highmem PFNs.
    assert m.virt_to_pfn(m.high_memory) == m.max_low_pfn
    assert m.virt_to_pfn(0xFF800000) == 0x3F800


def test_x86_32_free_pages_of_a_vmalloc_address_is_a_bad_address():
    iut = Lockstep(load_impl("reference").factory, "x86_32")
    iut.free_pages_addr(0xF8000000, 0)  # the correct report: BadAddress, and nothing changes
    assert iut.coverage["API-FREE-BAD-ADDRESS"] == 1 and not iut.failed


class _NofailSlabGivesUp(ReferenceAllocator):
    """Shows its slabs, does not claim SLAB-NO-SPURIOUS-FAIL, and gives up on a __GFP_NOFAIL object."""

    claims = ReferenceAllocator.claims - {"SLAB-NO-SPURIOUS-FAIL"}

    def kmalloc(self, size: int, gfp: int) -> int | None:
        return None if gfp & GFP.NOFAIL else super().kmalloc(size, gfp)

    def kmem_cache_alloc(self, cache: int, gfp: int) -> int | None:
        return None if gfp & GFP.NOFAIL else super().kmem_cache_alloc(cache, gfp)


@pytest.mark.parametrize("size", [64, 3 * 4096])  # a kmalloc-64 slab; a large kmalloc (pages with the caller's flags)
def test_a_blocking_nofail_kmalloc_never_returns_null_where_the_slabs_are_shown(size):
    # mm/slub.c allocate_slab retries s->min with the caller's flags; ___kmalloc_large_node passes them to alloc_pages.
    iut = Lockstep(lambda m, env: _NofailSlabGivesUp(m, env), "tiny")
    assert iut.kmalloc(size, GFP_KERNEL) is not None  # without NOFAIL, NULL would be allowed: the rule is unclaimed
    with pytest.raises(ConformanceFailure, match="NOFAIL-NEVER-NULL"):
        iut.kmalloc(size, GFP_KERNEL | GFP.NOFAIL)


def test_a_blocking_nofail_cache_alloc_never_returns_null():
    iut = Lockstep(lambda m, env: _NofailSlabGivesUp(m, env), "tiny")
    cache = iut.kmem_cache_create("nofail", 200, 0, 0)
    with pytest.raises(ConformanceFailure, match="NOFAIL-NEVER-NULL"):
        iut.kmem_cache_alloc(cache, GFP_KERNEL | GFP.NOFAIL)


def test_a_nofail_that_cannot_reclaim_gets_no_extra_reserve():
    # mm/page_alloc.c __alloc_pages_slowpath, nopage: !can_direct_reclaim goes to fail; only a blocking NOFAIL loops.
    model = PageAllocModel(load_machine("tiny-wmark"))  # ZONE_DMA: min 2
    dma = model.free_area[ZoneType.DMA]
    while model.nr_free[ZoneType.DMA] > 2:
        model.adopt_alloc(GFP_KERNEL | GFP.DMA, 0, next(s for k in range(5) if (s := free_starts(dma, k)))[0])
    pfn = next(s for k in range(5) if (s := free_starts(dma, k)))[0]
    model.check_reserves(GFP_KERNEL | GFP.DMA | GFP.NOFAIL, 0, pfn)  # may reach below min
    with pytest.raises(ConformanceFailure, match="WMARK-RESERVES-KEPT"):
        model.check_reserves(GFP_NOWAIT | GFP.DMA | GFP.NOFAIL, 0, pfn)


class _KsizeIsTheStride(ReferenceAllocator):
    """ksize answers the whole slot, red zone included."""

    def ksize(self, addr: int) -> int:
        n = super().ksize(addr)
        return n + 16 if n and addr in self._blocks and self._blocks[addr][0] else n


def test_ksize_of_a_red_zoned_object_is_its_object_size():
    # mm/slab.h slab_ksize: SLAB_RED_ZONE | SLAB_POISON under SLUB debugging give s->object_size.
    iut = Lockstep(lambda m, env: _KsizeIsTheStride(m, env), "tiny")
    plain = iut.kmem_cache_create("plain", 40, 0, 0)
    assert iut.ksize(iut.kmem_cache_alloc(plain, GFP_KERNEL)) >= 40  # without debugging the padding is usable
    cache = iut.kmem_cache_create("rz", 40, 0, int(SlabFlag.RED_ZONE))
    obj = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match="KSIZE-COVERS.*object size 40"):
        iut.ksize(obj)


class _KreallocQuiet(ReferenceAllocator):
    """krealloc without might_alloc(): a move in atomic context with blocking flags is not reported."""

    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        reports = list(self.env.reports)
        out = super().krealloc(addr, size, gfp)
        self.env.reports[:] = reports
        return out


def test_a_krealloc_that_moves_in_atomic_context_reports_might_sleep():
    # mm/slab_common.c __do_krealloc: a move is kmalloc_node_track_caller(new_size, flags), which runs might_alloc().
    iut = Lockstep(lambda m, env: _KreallocQuiet(m, env), "tiny")
    obj = iut.kmalloc(16, GFP_ATOMIC)
    iut.set_context(Context.SOFTIRQ)
    with pytest.raises(ConformanceFailure, match="CTX-MIGHT-SLEEP.*moved"):
        iut.krealloc(obj, 2000, GFP_KERNEL)


class _Leaky(ReferenceAllocator):
    """Loses every order-0 request: the pages stay free in the model."""

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        return None if order == 0 else super().alloc_pages(gfp, order)


def test_a_liveness_failure_names_a_block_the_model_holds_free():
    iut = Lockstep(lambda m, env: _Leaky(m, env), "tiny")
    with pytest.raises(ConformanceFailure, match=r"BUDDY-NO-SPURIOUS-FAIL.*pfn 0x[0-9a-f]+-0x[0-9a-f]+ \(an order-\d+ block of ZONE_NORMAL\) is free in the model"):
        iut.alloc_pages(GFP_KERNEL, 0)


class _SlabLeaky(ReferenceAllocator):
    """Shows its slabs, claims SLAB-NO-SPURIOUS-FAIL, and never grows a kmalloc slab."""

    def kmalloc(self, size: int, gfp: int) -> int | None:
        return None


@pytest.mark.parametrize("size", [64, 3 * 4096])  # a new kmalloc-64 slab; a large kmalloc
def test_a_slab_liveness_failure_names_a_block_the_model_holds_free(size):
    iut = Lockstep(lambda m, env: _SlabLeaky(m, env), "tiny")
    with pytest.raises(ConformanceFailure, match=r"SLAB-NO-SPURIOUS-FAIL.*: pfn 0x[0-9a-f]+-0x[0-9a-f]+ \(an order-\d+ block of ZONE_NORMAL\) is free in the model"):
        iut.kmalloc(size, GFP_KERNEL)


# -- cache merging (mm/slab_common.c find_mergeable, __kmem_cache_alias, kmem_cache_destroy) ----------


def test_a_merged_cache_is_an_alias_with_references():
    # SLUB merges a second cache of the same geometry: the same struct kmem_cache, refcount + 1.
    iut = Lockstep(load_impl("fast").factory, "tiny")
    a = iut.kmem_cache_create("a", 64, 0, 0)
    b = iut.kmem_cache_create("b", 60, 0, 0)
    assert a == b and iut.slab.caches[a].refcount == 2
    obj = iut.kmem_cache_alloc(b, GFP_KERNEL)
    iut.kmem_cache_destroy(a)  # drops a reference: nothing reported, the object stays
    assert obj in iut.slab.objects and iut.coverage["SLAB-DESTROY-BUSY"] == 0
    iut.kmem_cache_destroy(b)  # the last reference, with an object left: "Slab cache still has objects"
    assert iut.coverage["SLAB-DESTROY-BUSY"] == 1 and not iut.failed


@pytest.mark.parametrize("size,align,flags", [(64, 0, SlabFlag.RED_ZONE), (64, 0, SlabFlag.NO_MERGE), (64, 0, SlabFlag.CACHE_DMA),
                                              (40, 0, 0), (64, 128, 0), (72, 0, 0)])
def test_a_request_that_cannot_merge_gets_a_cache_of_its_own(size, align, flags):
    iut = Lockstep(load_impl("fast").factory, "tiny")
    a = iut.kmem_cache_create("a", 64, 0, 0)
    assert iut.kmem_cache_create("b", size, align, int(flags)) != a


def test_without_slub_debug_a_red_zone_request_merges():
    # Without CONFIG_SLUB_DEBUG, kmem_cache_create masks the debug flags off (CACHE_CREATE_MASK): nothing keeps it apart.
    iut = Lockstep(load_impl("tests/impls/alt_slab.py:make_no_debug").factory, "tiny")
    a = iut.kmem_cache_create("a", 1, 0, int(SlabFlag.RED_ZONE))
    iut.kmem_cache_alloc(a, GFP_ATOMIC)
    assert iut.kmem_cache_create("b", 1, 0, 0) == a and not iut.failed


def test_an_alias_of_a_cache_it_cannot_merge_with_fails_by_its_rule():
    iut = Lockstep(load_impl("mutant:merge-debug-caches").factory, "tiny")
    iut.kmem_cache_create("a", 64, 0, 0)
    with pytest.raises(ConformanceFailure, match="SLAB-CACHE-MERGE.*SLAB_RED_ZONE, which never merges"):
        iut.kmem_cache_create("b", 64, 0, int(SlabFlag.RED_ZONE))


class _Handles:
    """A slab layer that merges but gives each create a handle of its own: two caches share slabs."""

    def __init__(self, layer):
        self.layer, self.handles, self.next = layer, {}, 100

    def kmem_cache_create(self, name, size, align, flags):
        cid = self.layer.kmem_cache_create(name, size, align, flags)
        self.next += 1
        self.handles[self.next] = cid
        return self.next

    def kmem_cache_alloc(self, cid, gfp):
        return self.layer.kmem_cache_alloc(self.handles[cid], gfp)

    def slabs(self):
        first = {}
        for handle, cid in self.handles.items():
            first.setdefault(cid, handle)
        return [(first.get(c, c), p, o, u, t) for c, p, o, u, t in self.layer.slabs()]


def _handles(machine, env):
    impl = load_impl("fast").factory(machine, env)
    layer = _Handles(impl.slab)
    for op in ("kmem_cache_create", "kmem_cache_alloc", "slabs"):
        setattr(impl, op, getattr(layer, op))
    return impl


def test_distinct_ids_on_shared_slabs_are_told_to_return_the_alias():
    # Each slab has one slab_cache: merged caches are one struct kmem_cache, so one id.
    iut = Lockstep(_handles, "tiny")
    a = iut.kmem_cache_create("a", 64, 0, 0)
    b = iut.kmem_cache_create("b", 64, 0, 0)
    iut.kmem_cache_alloc(a, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match=f"SLAB-INTROSPECT.*kmem_cache_create must return cache {a}'s id again"):
        iut.kmem_cache_alloc(b, GFP_KERNEL)


# -- krealloc of a kmem_cache object (mm/slab_common.c __do_krealloc) ----------------------------


def test_krealloc_of_a_cache_object_stays_while_it_fits_and_moves_to_kmalloc_after():
    iut = Lockstep(load_impl("fast").factory, "tiny")
    cache = iut.kmem_cache_create("c", 40, 0, 0)
    obj = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    assert iut.krealloc(obj, 20, GFP_KERNEL) == obj and iut.slab.objects[obj].cache == cache
    new = iut.krealloc(obj, 200, GFP_KERNEL)
    assert new != obj and iut.slab.objects[new].cache is None and obj not in iut.slab.caches[cache].live
    iut.kfree(new)
    assert not iut.failed


class _KreallocInPlaceAlways(ReferenceAllocator):
    """krealloc that keeps a kmem_cache object in place whatever the size (its neighbours are elsewhere)."""

    def krealloc(self, addr, size, gfp):
        obj = self.slab.objects.get(addr)
        if obj is not None and obj.cache is not None and size:
            return addr
        return super().krealloc(addr, size, gfp)


def test_krealloc_that_grows_a_cache_object_past_ksize_in_place_fails():
    iut = Lockstep(lambda m, env: _KreallocInPlaceAlways(m, env), "tiny")
    cache = iut.kmem_cache_create("c", 40, 0, 0)
    obj = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match="KREALLOC.*exceed its ksize"):
        iut.krealloc(obj, 100, GFP_KERNEL)


# -- whole contents: a scribble anywhere in a live region is seen (item 6) ----------------------


def _scribble(iut: Lockstep, phys: int) -> None:
    """A stray write by the implementation itself: one byte of its memory changes behind the caller's back."""
    old = iut.iut.read_phys(phys, 1)[0]
    iut.iut.write_phys(phys, bytes([old ^ 0x5A]))


def test_a_scribble_on_the_second_page_of_an_order_2_block_is_seen_at_its_free():
    iut = Lockstep(load_impl("fast").factory, "tiny")
    pfn = iut.alloc_pages(GFP_KERNEL, 2)
    _scribble(iut, (pfn + 1) * iut.machine.page_size + 1000)
    with pytest.raises(ConformanceFailure, match=f"PAGE-CONTENTS-INTACT.*in pfn {pfn + 1:#x}.*byte {4096 + 992}"):
        iut.free_pages(pfn, 2)


def test_a_scribble_in_the_middle_of_an_object_is_seen_at_its_free():
    iut = Lockstep(load_impl("fast").factory, "tiny")
    addr = iut.kmalloc(512, GFP_KERNEL)
    _scribble(iut, iut.machine.virt_to_phys(addr) + 200)
    with pytest.raises(ConformanceFailure, match="SLAB-CONTENTS-INTACT.*byte 192"):
        iut.kfree(addr)


def test_check_contents_reads_every_live_byte():
    iut = Lockstep(load_impl("fast").factory, "tiny")
    pfn = iut.alloc_pages(GFP_KERNEL, 3)
    _scribble(iut, pfn * iut.machine.page_size + 5 * 4096 + 7)
    with pytest.raises(ConformanceFailure, match="PAGE-CONTENTS-INTACT"):
        iut.check_contents()


class _KreallocCopiesAWindow(ReferenceAllocator):
    """krealloc that moves an object but copies only its first 16 bytes."""

    def krealloc(self, addr, size, gfp):
        old = self.slab.objects.get(addr)
        new = super().krealloc(addr, size, gfp)
        if old is not None and new not in (None, addr) and old.size > 16:
            phys = self.machine.virt_to_phys(new)
            self.write_phys(phys + 16, bytes(min(old.size, size) - 16))
        return new


def test_a_krealloc_that_moves_compares_the_whole_old_object():
    iut = Lockstep(lambda m, env: _KreallocCopiesAWindow(m, env), "tiny")
    addr = iut.kmalloc(100, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match="KREALLOC.*first 100 bytes must be the old object's: at physical address .* [(]byte 16[)]"):
        iut.krealloc(addr, 3000, GFP_KERNEL)


# -- leaks: free pages per zone (mm/page_alloc.c account_freepages; /proc/zoneinfo nr_free_pages) ----------

def test_a_page_lost_in_a_merge_is_seen_at_the_free_that_lost_it_on_a_big_machine():
    iut = Lockstep(load_impl("mutant:top-merge-loses-a-page").factory, "x86_64:64M")
    pfn = iut.alloc_pages(GFP_KERNEL, 0)
    with pytest.raises(ConformanceFailure, match=r"INTROSPECT-ZONE-FREE.*1 page is lost \(a leak\); the step's pages are in pfn 0x[0-9a-f]+-0x[0-9a-f]+, an order-10 block"):
        iut.free_pages(pfn, 0)


class _CountsAllocatedPages(ReferenceAllocator):
    """zone_free_pages counts the pages it has handed out as free too."""

    capabilities = ReferenceAllocator.capabilities | {"zone_free_pages"}

    def zone_free_pages(self, zone: int) -> int:
        return self.model.nr_free[ZoneType(zone)] + sum(1 << b.order for b in self.model.live.values()
                                                       if self.model.machine.zone_of_pfn(b.pfn).zone_type == zone)


def test_pages_counted_free_that_are_allocated_are_an_invention():
    iut = Lockstep(lambda m, env: _CountsAllocatedPages(m, env), "tiny")
    with pytest.raises(ConformanceFailure, match=r"INTROSPECT-ZONE-FREE.*4 pages are counted free that are allocated"):
        iut.alloc_pages(GFP_KERNEL, 2)


def test_a_run_that_cannot_see_leaks_says_so():
    from kmemspec.harness.impls.mutants import DoubleFreeUnchecked
    from kmemspec.harness.loader import ImplSpec
    from kmemspec.properties import Profile, run_check

    class Blind(DoubleFreeUnchecked):  # no free_area, no zone_free_pages, no liveness claim
        claims = DoubleFreeUnchecked.claims - {"BUDDY-NO-SPURIOUS-FAIL"}

    quick = Profile("unit", 5, 5, "")
    blind = run_check(ImplSpec("blind", "blind", Blind), load_machine("x86_64:64M"), machine_spec="x86_64:64M",
                      profile=quick, seed_value=1, progress=None)
    assert any(n.startswith("leaks are not detectable on this run") and "does not claim BUDDY-NO-SPURIOUS-FAIL" in n
               for n in blind.notes), blind.notes
    claimed = run_check(load_impl("mutant:double-free-unchecked"), load_machine("x86_64:64M"), machine_spec="x86_64:64M",
                        profile=quick, seed_value=1, progress=None)
    assert not any("leaks" in n for n in claimed.notes), claimed.notes  # ZONE_DMA is filled to exhaustion on any size
    seeing = run_check(load_impl("fast"), load_machine("x86_64:64M"), machine_spec="x86_64:64M", profile=quick, seed_value=1, progress=None)
    assert not any("leaks" in n for n in seeing.notes) and seeing.coverage["INTROSPECT-ZONE-FREE"] > 0, seeing.notes


def test_a_red_zone_after_an_object_shrunk_in_place_stays_where_the_cache_put_it():
    # mm/slub.c __do_krealloc sets a new red zone only for kmalloc caches (slub_debug_orig_size): a kmem_cache
    # object shrunk in place keeps its red zone at the cache's object size.
    iut = Lockstep(load_impl("fast").factory, "tiny")
    cache = iut.kmem_cache_create("rz", 85, 8, int(SlabFlag.RED_ZONE))
    obj = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    assert iut.krealloc(obj, 21, GFP_KERNEL) == obj
    iut.clobber(obj + 85)
    iut.kmem_cache_validate(cache)  # fast reports the overwritten right red zone: SLAB-REDZONE-CHECK holds
    assert iut.coverage["SLAB-REDZONE-CHECK"] > 0


def test_a_busy_cache_destroyed_in_atomic_context_is_both_reports():
    # mm/slab_common.c kmem_cache_destroy sleeps (RCU barrier, cpus_read_lock, slab_mutex), then WARNs on the
    # objects left: where both rules are claimed, the busy report does not excuse a missing might_sleep splat.
    fast = load_impl("fast").factory

    def make(machine, env):
        impl = fast(machine, env)
        destroy = impl.kmem_cache_destroy

        def without_splat(cid):
            splat, env.might_sleep = env.might_sleep, lambda: None
            try:
                destroy(cid)
            finally:
                env.might_sleep = splat
        impl.kmem_cache_destroy = without_splat
        return impl

    iut = Lockstep(make, "tiny")
    cache = iut.kmem_cache_create("busy", 64, 0, 0)
    iut.kmem_cache_alloc(cache, int(GFP_ATOMIC))
    iut.set_context(Context.ATOMIC)
    with pytest.raises(ConformanceFailure, match="SLAB-CACHE-MIGHT-SLEEP"):
        iut.kmem_cache_destroy(cache)
