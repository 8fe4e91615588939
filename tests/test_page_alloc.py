"""The buddy oracle itself: canonical free area, expectations, and the messages of its checks."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import free_starts
from kmemspec.refmodel import ConformanceFailure, Context, load_machine
from kmemspec.refmodel.errors import BadFree, DoubleFree, FreeInterior, FreeWrongOrder, InvalidGfp, SleepInAtomic
from kmemspec.refmodel.gfp import GFP, GFP_ATOMIC, GFP_HIGHUSER, GFP_KERNEL, GFP_NOWAIT, ZoneType
from kmemspec.refmodel._internal import IntervalIndex
from kmemspec.refmodel.machine import split_aligned
from kmemspec.refmodel.page_alloc import Outcome, PageAllocModel
from kmemspec.refmodel.machine import PfnRange


def brute_force_canonical(model: PageAllocModel) -> dict:
    """Maximal aligned free blocks by scanning every page (test-only; the model never scans)."""
    m = model.machine
    out = {}
    for zone in m.populated_zones:
        free = set()
        for r in m.zone_free_ranges(zone):
            free.update(range(r.start, r.end))
        for blk in model.live.values():
            free.difference_update(range(blk.pfn, blk.end_pfn))
        blocks = set()
        for pfn in sorted(free):
            if any(s <= pfn < s + (1 << k) for s, k in blocks):
                continue
            k = 0
            while k < m.max_page_order:
                parent = pfn & ~((1 << (k + 1)) - 1)
                if all(p in free for p in range(parent, parent + (1 << (k + 1)))):
                    k += 1
                    pfn = parent
                else:
                    break
            blocks.add((pfn, k))
        out[zone.zone_type] = blocks
    return out


def test_boot_decomposition_is_canonical():
    model = PageAllocModel(load_machine("tiny"))
    assert model.free_blocks() == brute_force_canonical(model)
    assert model.nr_free[ZoneType.DMA] == 97


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 1000)), max_size=60))
def test_alloc_free_keeps_the_free_area_canonical(ops):
    model = PageAllocModel(load_machine("tiny"))
    for is_alloc, order, pick in ops:
        if is_alloc or not model.live:
            zones = [z for z in model.eligible_zones(GFP_KERNEL) if model.has_free_block(z, order)]
            if not zones:
                continue
            area = model.free_area[zones[pick % len(zones)]]
            k = next(k for k in range(order, 5) if free_starts(area, k))
            starts = free_starts(area, k)
            start = starts[pick % len(starts)]
            pfn = start + ((pick % (1 << (k - order))) << order)
            model.check_alloc(GFP_KERNEL, order, pfn)
            model.adopt_alloc(GFP_KERNEL, order, pfn)
        else:
            blk = sorted(model.live.values(), key=lambda b: b.pfn)[pick % len(model.live)]
            assert model.expect_free(blk.pfn, blk.order).report is None
            model.adopt_free(blk.pfn, blk.order)
        assert model.free_blocks() == brute_force_canonical(model)


def test_split_aligned_is_maximal():
    assert list(split_aligned(PfnRange(3, 20), 4)) == [(3, 0), (4, 2), (8, 3), (16, 2)]


def test_expectations():
    model = PageAllocModel(load_machine("tiny"))
    assert model.expect_alloc(GFP_KERNEL, 2).outcome is Outcome.MUST_SUCCEED
    assert model.expect_alloc(GFP_KERNEL, 5).outcome is Outcome.MUST_FAIL
    e = model.expect_alloc(GFP_KERNEL, 0, Context.HARDIRQ)
    assert e.report is SleepInAtomic and not e.fatal and e.outcome is Outcome.MUST_SUCCEED
    e = model.expect_alloc(GFP_KERNEL | GFP.DMA | GFP.DMA32, 0)
    assert e.report is InvalidGfp and e.fatal
    assert model.expect_alloc(GFP_ATOMIC, 0, Context.HARDIRQ).report is None


def _take_dma_down_to(model, nr_free):
    dma = model.free_area[ZoneType.DMA]
    while model.nr_free[ZoneType.DMA] > nr_free:
        k = next(k for k in range(5) if free_starts(dma, k))
        model.adopt_alloc(GFP_KERNEL | GFP.DMA, 0, free_starts(dma, k)[0])


def test_watermark_band():
    model = PageAllocModel(load_machine("tiny-wmark"))  # ZONE_DMA: min 2, low 4
    _take_dma_down_to(model, 5)
    assert model.expect_alloc(GFP_KERNEL | GFP.DMA, 0).outcome is Outcome.MUST_SUCCEED  # 5 > low 4: the fast path
    # At or below low the slow path's first retry takes the block down to min (__alloc_pages_slowpath).
    _take_dma_down_to(model, 3)
    e = model.expect_alloc(GFP_KERNEL | GFP.DMA, 0)
    assert e.outcome is Outcome.MUST_SUCCEED and "min watermark" in e.reason  # 3 > min 2
    _take_dma_down_to(model, 2)
    assert model.expect_alloc(GFP_KERNEL | GFP.DMA, 0).outcome is Outcome.MAY_FAIL  # 2 <= min 2
    # GFP_ATOMIC: __GFP_HIGH halves min (ALLOC_MIN_RESERVE), ALLOC_NON_BLOCK takes a quarter more: 2 -> 1.
    assert model.expect_alloc(GFP_ATOMIC | GFP.DMA, 0).outcome is Outcome.MUST_SUCCEED  # 2 > 1
    assert model.expect_alloc(GFP_NOWAIT | GFP.DMA, 0).outcome is Outcome.MAY_FAIL  # no __GFP_HIGH: min stays 2
    assert model.expect_alloc(GFP_KERNEL | GFP.DMA | GFP.NOFAIL, 0).outcome is Outcome.MUST_SUCCEED
    assert model.expect_alloc(GFP_ATOMIC | GFP.DMA | GFP.MEMALLOC, 0).outcome is Outcome.MUST_SUCCEED
    _take_dma_down_to(model, 1)
    assert model.expect_alloc(GFP_ATOMIC | GFP.DMA, 0).outcome is Outcome.MAY_FAIL  # 1 <= 1
    # lowmem_reserve: a DMA32-capable request falling back into DMA must leave 6 more pages.
    assert not model.watermark_ok(ZoneType.DMA, 0, ZoneType.DMA32)


def test_check_messages_name_rule_and_place():
    model = PageAllocModel(load_machine("tiny"))
    with pytest.raises(ConformanceFailure, match=r"BUDDY-NO-CROSS-ZONE: order-3 block at pfn 0x60 spans ZONE_DMA and ZONE_DMA32 \(boundary pfn 0x64\)"):
        model.check_alloc(GFP_KERNEL, 3, 0x60)
    with pytest.raises(ConformanceFailure, match="BUDDY-ALIGN"):
        model.check_alloc(GFP_KERNEL, 2, 0x42)
    with pytest.raises(ConformanceFailure, match="GFP-ZONE-ELIGIBLE: .* is in ZONE_NORMAL, but GFP_KERNEL\\|__GFP_DMA allows only ZONE_DMA"):
        model.check_alloc(GFP_KERNEL | GFP.DMA, 0, 300)
    with pytest.raises(ConformanceFailure, match="PAGE-RAM-ONLY: .* pfn 0x96, which is a hole"):
        model.check_alloc(GFP_KERNEL, 1, 0x96)
    with pytest.raises(ConformanceFailure, match="PAGE-RAM-ONLY: .* pfn 0x1, which is reserved"):
        model.check_alloc(GFP_KERNEL | GFP.DMA, 0, 1)
    model.adopt_alloc(GFP_KERNEL, 2, 0x100)
    with pytest.raises(ConformanceFailure, match="BUDDY-NO-OVERLAP: order-3 block at pfn 0x100 overlaps the live order-2 block at pfn 0x100"):
        model.check_alloc(GFP_KERNEL, 3, 0x100)


def test_highmem_is_never_a_logical_address():
    model = PageAllocModel(load_machine("tiny-highmem"))
    with pytest.raises(ConformanceFailure, match="API-LOWMEM-ADDRESS"):
        model.check_alloc(GFP_HIGHUSER, 0, 250, logical=True)
    model.check_alloc(GFP_HIGHUSER, 0, 250)  # alloc_pages may return highmem


def test_free_misuse_kinds():
    model = PageAllocModel(load_machine("tiny"))
    model.adopt_alloc(GFP_KERNEL | GFP.COMP, 2, 0x100)
    assert model.expect_free(0x100, 2).report is None
    assert model.expect_free(0x100, 1).report is FreeWrongOrder
    assert model.expect_free(0x101, 0).report is FreeInterior
    assert model.expect_free(0x104, 0).report is DoubleFree
    assert model.expect_free(0x97, 0).report is BadFree  # hole
    assert model.expect_free(0x1, 0).report is BadFree  # reserved
    beyond = model.expect_free(0x500, 0)  # beyond RAM: no struct page, undefined
    assert beyond.report is BadFree and beyond.report_rule is None
    model.adopt_alloc(GFP_KERNEL, 1, 0x108)
    assert model.expect_free(0x108, 0).report_rule is None  # not compound: the kernel does not check
    e, pfn = model.expect_free_addr(0, 0)
    assert e.report is None and pfn is None
    e, pfn = model.expect_free_addr(model.machine.pfn_to_virt(0x100) + 5, 2)
    assert e.report is None and pfn == 0x100  # virt_to_page rounds down


def test_free_area_introspection():
    model = PageAllocModel(load_machine("tiny"))
    blocks = [b for bs in model.free_blocks().values() for b in bs]
    model.check_free_area(blocks)
    split = [(p, k) for p, k in blocks if k == 0] + [(p + i, 0) for p, k in blocks if k > 0 for i in range(1 << k)]
    model.check_free_area(split)  # unmerged reports are fine: the union is what counts
    with pytest.raises(ConformanceFailure, match="INTROSPECT-FREE-AREA"):
        model.check_free_area(blocks[1:])
    with pytest.raises(ConformanceFailure, match="overlaps"):
        model.check_free_area(blocks + [blocks[0]])


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 60), st.integers(1, 6)), max_size=40),
       st.integers(0, 70), st.integers(0, 70), st.integers(1, 8))
def test_interval_index_answers_as_a_scan_does(ops, point, start, length):
    # The index page_alloc, slab and slab_debug share: disjoint [start, start + n) kept by start.
    index: IntervalIndex[tuple[int, int]] = IntervalIndex(lambda iv: iv[0] + iv[1])
    for add, s, n in ops:
        if add and not any(a < s + n and s < a + m for a, m in index.values()):
            index[s] = (s, n)
        elif not add and index:
            del index[sorted(index)[s % len(index)]]
    assert index._starts == sorted(index)
    live = sorted(index.values())
    end = start + length
    overlapping = [iv for iv in live if iv[0] < end and start < iv[0] + iv[1]]
    assert index.containing(point) == next((iv for iv in live if iv[0] <= point < iv[0] + iv[1]), None)
    assert index.first_overlapping(start, end) == (overlapping[0] if overlapping else None)
    assert index.last_overlapping(start, end) == (overlapping[-1] if overlapping else None)
    assert index.all_overlapping(start, end) == overlapping
    rest = [iv for iv in overlapping if iv[0] != start]
    assert index.last_overlapping(start, end, ignore=start) == (rest[-1] if rest else None)


def test_get_free_pages_drops_highmem_where_it_enters_the_oracle():
    model = PageAllocModel(load_machine("tiny-highmem"))
    user = int(GFP_HIGHUSER) & ~int(GFP.HIGHMEM)
    assert model.expect_alloc(GFP_HIGHUSER, 0, logical=True) == model.expect_alloc(user, 0, logical=True)
    pfn = 0x90  # ZONE_NORMAL, lowmem RAM
    model.check_alloc(GFP_HIGHUSER, 0, pfn, logical=True)
    model.check_reserves(GFP_HIGHUSER, 0, pfn, logical=True)
