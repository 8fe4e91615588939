"""GFP flags against include/linux/gfp_types.h and gfp.h (GFP-BITS, GFP-COMBOS, GFP-ZONE-TABLE)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmemspec.refmodel.gfp import (
    GFP, GFP_INT, GFP_ZONEMASK, __GFP_RECLAIM, GFP_ATOMIC, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT, GFP_USER, GFP_ZONE_BAD,
    ZoneType, format_gfp, gfp_zone, gfp_zone_bad, gfpflags_allow_blocking, parse_gfp, zonelist_eligible,
)

X86_64 = frozenset({ZoneType.DMA, ZoneType.DMA32, ZoneType.NORMAL, ZoneType.MOVABLE})
X86_32 = frozenset({ZoneType.DMA, ZoneType.NORMAL, ZoneType.HIGHMEM, ZoneType.MOVABLE})


def test_composite_values_match_the_kernel():
    assert GFP_KERNEL == 0xCC0
    assert GFP_ATOMIC == 0x820
    assert GFP_NOWAIT == 0x2800
    assert GFP_USER == 0x100CC0
    assert GFP_HIGHUSER == 0x100CC2
    assert GFP_HIGHUSER_MOVABLE == 0x100CCA


@pytest.mark.parametrize("mask,x86_64,x86_32", [
    (0, ZoneType.NORMAL, ZoneType.NORMAL),
    (GFP.DMA, ZoneType.DMA, ZoneType.DMA),
    (GFP.DMA32, ZoneType.DMA32, ZoneType.NORMAL),  # OPT_ZONE_DMA32 falls back to NORMAL where absent
    (GFP.HIGHMEM, ZoneType.NORMAL, ZoneType.HIGHMEM),
    (GFP.MOVABLE, ZoneType.NORMAL, ZoneType.NORMAL),
    (GFP.MOVABLE | GFP.HIGHMEM, ZoneType.MOVABLE, ZoneType.MOVABLE),
    (GFP.MOVABLE | GFP.DMA, ZoneType.DMA, ZoneType.DMA),
    (GFP.MOVABLE | GFP.DMA32, ZoneType.DMA32, ZoneType.NORMAL),
])
def test_gfp_zone_table(mask, x86_64, x86_32):
    assert gfp_zone(GFP_KERNEL | mask, X86_64) == x86_64
    assert gfp_zone(GFP_KERNEL | mask, X86_32) == x86_32


def test_bad_zone_combinations_are_exactly_two_or_more_of_dma_dma32_highmem():
    for bits in range(16):
        several = bin(bits & 0x7).count("1") > 1
        assert gfp_zone_bad(bits) == several, hex(bits)
    assert GFP_ZONE_BAD == {0x3, 0x5, 0x6, 0x7, 0xB, 0xD, 0xE, 0xF}
    assert gfp_zone(GFP.DMA | GFP.HIGHMEM, X86_64) == ZoneType.DMA  # zone 0 without DEBUG_VM


def test_fallback_is_to_lower_zones_only():
    assert zonelist_eligible(ZoneType.DMA, ZoneType.NORMAL)
    assert not zonelist_eligible(ZoneType.NORMAL, ZoneType.DMA32)


def test_blocking():
    assert gfpflags_allow_blocking(GFP_KERNEL)
    assert not gfpflags_allow_blocking(GFP_ATOMIC)
    assert not gfpflags_allow_blocking(GFP_NOWAIT)


def test_format_like_the_kernel():
    assert format_gfp(GFP_KERNEL | GFP.ZERO) == "GFP_KERNEL|__GFP_ZERO"
    assert format_gfp(GFP_KERNEL | GFP.DMA) == "GFP_KERNEL|__GFP_DMA"
    assert format_gfp(GFP_HIGHUSER_MOVABLE) == "GFP_HIGHUSER_MOVABLE"
    assert format_gfp(0) == "0"


@given(st.integers(0, (1 << 24) - 1))
def test_format_parse_round_trip(mask):
    assert parse_gfp(format_gfp(mask)) == mask


def test_parse_names_the_bad_token():
    with pytest.raises(ValueError, match="__GFP_BOGUS"):
        parse_gfp("GFP_KERNEL|__GFP_BOGUS")


def test_plain_int_bits_are_the_flags():
    for bit in GFP:
        assert getattr(GFP_INT, bit.name) == int(bit) and type(getattr(GFP_INT, bit.name)) is int
    assert GFP_INT.ZONEMASK == int(GFP_ZONEMASK) and GFP_INT.RECLAIM == int(__GFP_RECLAIM)
