"""The slab oracle: the kernel's size classes and alignment, and slub_kunit's scenarios with the verdicts the kernel expects."""

import pytest

from conftest import impl_path

from kmemspec.harness import Lockstep, load_impl
from kmemspec.refmodel import load_machine
from kmemspec.refmodel.errors import ConformanceFailure, DoubleFree, InvalidArgument, InvalidFree, WrongCache
from kmemspec.refmodel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL
from kmemspec.refmodel.kmalloc import (
    ZERO_SIZE_PTR,
    kmalloc_bucket,
    kmalloc_max_cache_size,
    kmalloc_max_size,
    kmalloc_min_align,
    kmalloc_size_roundup,
)
from kmemspec.refmodel.page_alloc import get_order
from kmemspec.refmodel.slab import SlabFlag, calculate_alignment

X86_64 = load_machine("x86_64")


def test_constants_for_x86_64_with_4k_pages():
    # include/linux/slab.h with PAGE_SHIFT 12, MAX_PAGE_ORDER 10 (KMALLOC-SHIFTS, KMALLOC-LIMITS)
    assert kmalloc_max_cache_size(X86_64) == 8192
    assert kmalloc_max_size(X86_64) == 4 << 20
    assert ZERO_SIZE_PTR == 16


@pytest.mark.parametrize("sizes,bucket", [
    ((1, 8), 8), ((9, 16), 16), ((17, 32), 32), ((33, 64), 64), ((65, 96), 96), ((97, 128), 128),
    ((129, 192), 192), ((193, 256), 256), ((257, 512), 512), ((513, 1024), 1024), ((2049, 4096), 4096), ((4097, 8192), 8192),
])
def test_kmalloc_buckets_are_the_kernels(sizes, bucket):
    # mm/slab_common.c kmalloc_size_index[] and fls(size - 1) above 192 (KMALLOC-RUNTIME-LOOKUP)
    for size in range(sizes[0], sizes[1] + 1):
        assert kmalloc_bucket(size) == bucket, size


def test_size_roundup_beyond_the_caches():
    assert kmalloc_size_roundup(0, X86_64) == 0
    assert kmalloc_size_roundup(8193, X86_64) == 16384  # PAGE_SIZE << get_order(8193)
    assert kmalloc_size_roundup(12288, X86_64) == 16384
    assert kmalloc_size_roundup((4 << 20) + 1, X86_64) == (4 << 20) + 1
    assert [get_order(n, 12) for n in (1, 4096, 4097, 8192, 8193, 1 << 22)] == [0, 0, 1, 1, 2, 10]


def test_alignment_rules():
    # kmalloc kernel-doc: at least 8, and the largest power of two dividing the size
    assert [kmalloc_min_align(n) for n in (1, 24, 96, 100, 192, 4096)] == [8, 8, 32, 8, 64, 4096]
    # calculate_alignment: HWCACHE starts at the 64-byte line and halves while the object fits in half
    hw = int(SlabFlag.HWCACHE_ALIGN)
    assert [calculate_alignment(hw, 0, n) for n in (8, 20, 40, 100)] == [8, 32, 64, 64]
    assert calculate_alignment(0, 0, 40) == 8 and calculate_alignment(0, 128, 40) == 128 and calculate_alignment(0, 12, 40) == 16


def _iut(spec="fast"):
    return Lockstep(load_impl(spec).factory, "tiny", label=spec)


def test_kunit_leak_destroy_is_reported_and_the_object_survives():
    # lib/slub_kunit.c test_leak_destroy: destroying a cache with a live object is reported ("Objects remaining")
    iut = _iut()
    cache = iut.kmem_cache_create("TestSlub_leak_destroy", 64, 0, 0)
    obj = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    iut.kmem_cache_destroy(cache)
    assert cache in iut.slab.caches and obj in iut.slab.objects
    iut.check_contents()
    iut.kmem_cache_free(cache, obj)
    # kmem_cache_destroy unlinked and leaked it: a second destroy only takes s->refcount below 0, a misuse the suite does not judge
    with pytest.raises(InvalidArgument, match="last reference"):
        iut.kmem_cache_destroy(cache)


def test_kunit_leak_destroy_kills_a_cache_that_frees_live_objects():
    iut = _iut("mutant:destroy-busy-frees")
    cache = iut.kmem_cache_create("TestSlub_leak_destroy", 64, 0, 0)
    iut.kmem_cache_alloc(cache, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match="SLAB-DESTROY-BUSY"):
        iut.kmem_cache_destroy(cache)


def test_double_free_is_object_already_free():
    # mm/slub.c free_consistency_checks "Object already free"
    iut = _iut()
    p = iut.kmalloc(64, GFP_KERNEL)
    iut.kfree(p)
    e = iut.slab.expect_kfree(p)
    assert e.report is DoubleFree and InvalidFree in e.also_report
    iut.kfree(p)  # fast raises DoubleFree: judged as the claimed detection, nothing changes
    assert iut.trace[-1].comment.startswith("misuse")


def test_interior_pointer_and_page_block_are_invalid_frees():
    iut = _iut()
    p = iut.kmalloc(64, GFP_KERNEL)
    assert iut.slab.expect_kfree(p + 8).report is InvalidFree
    addr = iut.get_free_pages(GFP_KERNEL, 0)
    assert iut.slab.expect_kfree(addr).report is InvalidFree
    iut.kfree(p + 8)
    iut.kfree(addr)
    iut.free_pages_addr(addr, 0)
    iut.kfree(p)


def test_wrong_cache():
    iut = _iut()
    a = iut.kmem_cache_create("a", 64, 0, 0)
    b = iut.kmem_cache_create("b", 64, 0, int(SlabFlag.NO_MERGE))
    obj = iut.kmem_cache_alloc(a, GFP_KERNEL)
    assert iut.slab.expect_kfree(obj, cid=b).report is WrongCache
    iut.kmem_cache_free(b, obj)
    iut.kmem_cache_free(a, obj)


def test_zero_size_and_null():
    iut = _iut()
    assert iut.kmalloc(0, GFP_KERNEL) == ZERO_SIZE_PTR
    iut.kfree(0)
    iut.kfree(ZERO_SIZE_PTR)
    assert iut.ksize(0) == 0 and iut.ksize(ZERO_SIZE_PTR) == 0
    assert iut.kmalloc_array(1 << 33, 1 << 33, GFP_KERNEL) is None  # check_mul_overflow


def test_highmem_kmalloc_is_fixed_up_and_lowmem():
    # kmalloc_fix_flags: reported (fast claims the strict form) and served from lowmem
    iut = Lockstep(load_impl("fast").factory, "tiny-highmem", label="fast")
    p = iut.kmalloc(100, GFP_KERNEL | GFP.HIGHMEM)
    assert p is not None and iut.machine.is_lowmem(iut.machine.virt_to_pfn(p))


def test_kmalloc_in_atomic_context_with_gfp_atomic_never_sleeps():
    from kmemspec.refmodel import Context

    iut = _iut()
    iut.set_context(Context.HARDIRQ)
    for size in (8, 200, 5000, 20000):
        iut.kmalloc(size, GFP_ATOMIC)


def test_refill_with_gfp_kernel_is_caught():
    # The classic bug: new_slab with GFP_KERNEL for a GFP_ATOMIC caller. In atomic context it is a false SleepInAtomic.
    from kmemspec.refmodel import Context

    iut = _iut("mutant:refill-with-gfp-kernel")
    iut.set_context(Context.ATOMIC)
    with pytest.raises(ConformanceFailure, match="IUT-NO-FALSE-REPORT"):
        iut.kmalloc(64, GFP_ATOMIC)


@pytest.mark.parametrize("spec", ["fast", "reference", impl_path("alt_slab")])
def test_introspection_keeps_page_liveness_exact(spec):
    iut = Lockstep(load_impl(spec).factory, "tiny", label="x")
    iut.kmalloc(64, GFP_KERNEL)
    assert iut.slab.slab_blocks and not iut.slab.opaque
    iut.check_free_area()


# -- lib/slub_kunit.c: poison and red zones (SLAB-POISON, SLAB-POISON-CHECK, SLAB-REDZONE-CHECK) --------------

RED_ZONE, POISON = int(SlabFlag.RED_ZONE), int(SlabFlag.POISON)


def _clobber_and_validate(iut, cache, addr):
    """The kunit pattern: write the byte, validate (reported and restored), validate again (clean)."""
    iut.clobber(addr)
    iut.kmem_cache_validate(cache)
    assert not iut.slab.corrupt
    iut.kmem_cache_validate(cache)


@pytest.mark.parametrize("spec,flags", [("fast", RED_ZONE), ("reference", RED_ZONE | int(SlabFlag.STORE_USER))])
def test_kunit_clobber_zone(spec, flags):
    # test_clobber_zone: p[64] = 0x12 past a live 64-byte object of a SLAB_RED_ZONE cache; validate finds it
    # (reference's slabs hold one object each, so they are full: validate walks them only with SLAB_STORE_USER)
    iut = _iut(spec)
    cache = iut.kmem_cache_create("TestSlub_RZ_alloc", 64, 0, flags)
    p = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    _clobber_and_validate(iut, cache, p + 64)
    _clobber_and_validate(iut, cache, p - 1)  # the left red zone, which slub_kunit does not test
    iut.kmem_cache_free(cache, p)
    iut.kmem_cache_destroy(cache)


@pytest.mark.parametrize("offset", [0, 50, 63], ids=["first_word", "50th_byte", "end_poison"])
def test_kunit_clobber_free_object_poison(offset):
    # test_first_word (*p = 0x78) and test_clobber_50th_byte (p[50] = 0x9a) after kmem_cache_free
    iut = _iut()
    cache = iut.kmem_cache_create("TestSlub_1th_word_free", 64, 0, POISON)
    p = iut.kmem_cache_alloc(cache, GFP_KERNEL)  # reads 0x6b .. 0xa5 (SLAB-POISON, checked on alloc)
    iut.kmem_cache_free(cache, p)  # and again once free
    assert iut.slab.free_object_at(p + offset) is not None
    _clobber_and_validate(iut, cache, p + offset)


def test_kunit_clobber_redzone_free():
    # test_clobber_redzone_free: p[64] = 0xab after the free
    iut = _iut()
    cache = iut.kmem_cache_create("TestSlub_RZ_free", 64, 0, RED_ZONE)
    p = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    iut.kmem_cache_free(cache, p)
    _clobber_and_validate(iut, cache, p + 64)


def test_red_zone_of_a_full_slab_needs_store_user():
    # validate_slab_node walks full slabs only with SLAB_STORE_USER: there the oracle cannot require the report
    iut = _iut()
    cache = iut.kmem_cache_create("full", 2048, 0, RED_ZONE)
    objs = [iut.kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(64)]
    full = [p for p in objs if (lambda s: s is not None and iut.slab.slab_usage[s][0] == iut.slab.slab_usage[s][1])(iut.slab.slab_of(p))]
    assert full
    assert full[0] + 2048 not in iut.slab.clobber_sites(cache, iut.claims)
    with pytest.raises(InvalidArgument):
        iut.clobber(full[0] + 2048)


@pytest.mark.parametrize("name,rule", [("no-left-red-zone", "SLAB-REDZONE-CHECK"), ("validate-no-restore", "SLAB-REDZONE-CHECK")])
def test_kunit_clobber_zone_kills(name, rule):
    iut = _iut(f"mutant:{name}")
    cache = iut.kmem_cache_create("TestSlub_RZ_alloc", 64, 0, RED_ZONE)
    p = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match=rule):
        _clobber_and_validate(iut, cache, p - 1)


def test_kunit_first_word_kills_a_validate_that_skips_poison():
    iut = _iut("mutant:validate-red-zones-only")
    cache = iut.kmem_cache_create("TestSlub_1th_word_free", 64, 0, POISON)
    p = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    iut.kmem_cache_free(cache, p)
    with pytest.raises(ConformanceFailure, match="SLAB-POISON-CHECK"):
        _clobber_and_validate(iut, cache, p)


def test_a_free_pointer_over_the_poison_is_caught():
    iut = _iut("mutant:free-pointer-in-poison")
    cache = iut.kmem_cache_create("TestSlub_next_ptr_free", 64, 0, POISON)
    a, b = iut.kmem_cache_alloc(cache, GFP_KERNEL), iut.kmem_cache_alloc(cache, GFP_KERNEL)
    with pytest.raises(ConformanceFailure, match="SLAB-POISON"):
        iut.kmem_cache_free(cache, a)
        iut.kmem_cache_free(cache, b)


def test_typesafe_by_rcu_is_not_poisoned():
    # calculate_sizes: __OBJECT_POISON only without SLAB_TYPESAFE_BY_RCU
    iut = _iut()
    cache = iut.kmem_cache_create("rcu", 64, 0, POISON | int(SlabFlag.TYPESAFE_BY_RCU))
    assert not iut.slab.caches[cache].poisoned and iut.slab.expected_poison(cache, int(GFP_KERNEL)) is None
    assert iut.slab.expected_poison(iut.kmem_cache_create("p", 64, 0, POISON), int(GFP_KERNEL)) == b"\x6b" * 63 + b"\xa5"


# -- page blocks of the slab layer given to free_pages (SLAB-PAGE-BAD-FREE) --------------------------------------

@pytest.mark.parametrize("spec", ["fast", "reference"])
def test_free_pages_of_a_slab_page_is_a_bad_page_state(spec):
    iut = _iut(spec)
    p = iut.kmalloc(64, GFP_KERNEL)
    pfn = iut.slab.slab_of(p)
    iut.free_pages(pfn, iut.slab.slab_blocks[pfn][1])  # refused with BadFree: the slab and its object stay
    assert p in iut.slab.objects and pfn in iut.slab.slab_blocks
    iut.kfree(p)


@pytest.mark.parametrize("spec,freed", [("fast", True), ("reference", False)])
def test_free_pages_of_a_large_kmalloc_block_frees_it_or_is_reported(spec, freed):
    # 6.12: a large kmalloc block is a plain compound page, freed without complaint; a typed one is reported
    iut = _iut(spec)
    p = iut.kmalloc(3 * iut.machine.page_size, GFP_KERNEL)
    pfn = iut.machine.virt_to_pfn(p)
    iut.free_pages(pfn, 2)
    assert (p not in iut.slab.objects) is freed
    iut.kfree(p)  # a double free (fast: "Not a kmalloc allocation"), or the block's proper free (reference)


def test_kfree_then_free_pages_is_a_page_double_free():
    iut = _iut()
    p = iut.kmalloc(3 * iut.machine.page_size, GFP_KERNEL)
    iut.kfree(p)
    iut.free_pages(iut.machine.virt_to_pfn(p), 2)
    assert "DoubleFree" in iut.trace[-1].comment


def test_kfree_of_a_page_block_at_a_freed_objects_address_is_an_invalid_free():
    # the page allocator handed the freed large kmalloc block out again: kfree now meets a page block, not a freed object
    iut = _iut()
    a = iut.kmalloc(9000, GFP_KERNEL)
    iut.kfree(a)
    b = iut.get_free_pages(GFP_KERNEL, 2)
    assert a == b and iut.slab.expect_kfree(b).report is InvalidFree
    iut.kfree(b)
    assert "addr_0" in iut.trace[-1].render()


def test_nofail_binds_above_the_watermarks_without_the_liveness_claim():
    from kmemspec.harness.impls.fast import FastBuddy

    class NullNofail(FastBuddy):
        claims = FastBuddy.claims - {"BUDDY-NO-SPURIOUS-FAIL", "SLAB-NO-SPURIOUS-FAIL"}

        def _alloc(self, gfp, order, zonelists):
            return None if gfp & int(GFP.NOFAIL) else super()._alloc(gfp, order, zonelists)

    iut = Lockstep(NullNofail, "tiny")
    with pytest.raises(ConformanceFailure, match="NOFAIL-NEVER-NULL"):
        iut.alloc_pages(GFP_KERNEL | GFP.NOFAIL, 0)
