"""Zone watermarks and lowmem_reserve: how the kernel sets them and what they let an allocation take.

Models ``mm/page_alloc.c``: calculate_min_free_kbytes(),
__setup_per_zone_wmarks() and setup_per_zone_lowmem_reserve() (what boot
sets, ``kernel_watermarks``), and the arithmetic of __zone_watermark_ok()
with the alloc flags of gfp_to_alloc_flags() (what a request may take,
``watermark_free_ok`` and ``min_watermark``). Pure functions of page counts:
no zone state lives here.

Invariants: 0 <= min <= low <= high; a zone's lowmem_reserve[j] grows with
the managed pages of the zones above it up to j, and is 0 for j at or below
the zone itself.

Neighbours: zones and machines are ``machine``'s (a machine holds these
numbers); the free page counts they are compared with are the buddy
oracle's (``page_alloc``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from .gfp import GFP, ZoneType, gfpflags_allow_blocking

_HIGH, _NOFAIL = int(GFP.HIGH), int(GFP.NOFAIL)
_MEMALLOC, _NOMEMALLOC = int(GFP.MEMALLOC), int(GFP.NOMEMALLOC)

#: sysctl_lowmem_reserve_ratio[] defaults (mm/page_alloc.c, fact WMARK-LOWMEM-RESERVE).
LOWMEM_RESERVE_RATIO: Final[dict[ZoneType, int]] = {
    ZoneType.DMA: 256,
    ZoneType.DMA32: 256,
    ZoneType.NORMAL: 32,
    ZoneType.HIGHMEM: 0,
    ZoneType.MOVABLE: 0,
}
SWAP_CLUSTER_MAX: Final = 32
WATERMARK_SCALE_FACTOR: Final = 10


@dataclass(frozen=True)
class Watermarks:
    """WMARK_MIN / WMARK_LOW / WMARK_HIGH in pages (include/linux/mmzone.h, fact WMARK-ENUM)."""

    min: int = 0
    low: int = 0
    high: int = 0


def is_highmem_class(zone_type: ZoneType) -> bool:
    """HIGHMEM and MOVABLE: their watermarks are not a share of min_free_kbytes (__setup_per_zone_wmarks)."""
    return zone_type in (ZoneType.HIGHMEM, ZoneType.MOVABLE)


def kernel_watermarks(
    zones: list[tuple[ZoneType, int, int]], managed: dict[ZoneType, int], page_shift: int
) -> list[tuple[Watermarks, tuple[int, ...]]]:
    """The kernel's watermarks and lowmem_reserve of each zone, for the given managed page counts.

    Fact WMARK-MINFREE: min_free_kbytes = clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)
    (mm/page_alloc.c calculate_min_free_kbytes). Fact WMARK-SETUP: lowmem zones get
    their share of pages_min, HIGHMEM/MOVABLE clamp(managed/1024, 32, 128);
    gap = max(share/4, managed * watermark_scale_factor / 10000); low = min + gap,
    high = min + 2 * gap (__setup_per_zone_wmarks). Fact WMARK-LOWMEM-RESERVE:
    lowmem_reserve[j] = sum(managed of zones above, up to j) / ratio
    (setup_per_zone_lowmem_reserve).
    """
    lowmem_pages = sum(n for t, n in managed.items() if not is_highmem_class(t))
    lowmem_kbytes = lowmem_pages << (page_shift - 10)
    min_free_kbytes = min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)
    pages_min = min_free_kbytes >> (page_shift - 10)
    out: list[tuple[Watermarks, tuple[int, ...]]] = []
    for zone_type, _, _ in zones:
        n = managed.get(zone_type, 0)
        share = pages_min * n // lowmem_pages if lowmem_pages else 0
        if is_highmem_class(zone_type):
            wmin = min(max(n // 1024, SWAP_CLUSTER_MAX), 128) if n else 0
        else:
            wmin = share
        gap = max(share >> 2, n * WATERMARK_SCALE_FACTOR // 10000)
        reserve = [0] * len(ZoneType)
        ratio = LOWMEM_RESERVE_RATIO[zone_type]
        above = 0
        for j in ZoneType:
            if j <= zone_type:
                continue
            above += managed.get(j, 0)
            reserve[j] = above // ratio if ratio and n else 0
        out.append((Watermarks(wmin, wmin + gap, wmin + 2 * gap), tuple(reserve)))
    return out


def watermark_free_ok(nr_free: int, order: int, mark: int, lowmem_reserve: int) -> bool:
    """__zone_watermark_ok's page count test: free - (2^order - 1) > mark + lowmem_reserve[highest_zoneidx] (fact WMARK-OK)."""
    return nr_free - ((1 << order) - 1) > mark + lowmem_reserve


def may_ignore_min(gfp: int) -> bool:
    """__GFP_MEMALLOC (without __GFP_NOMEMALLOC) and a blocking __GFP_NOFAIL may take pages below the min watermark.

    mm/page_alloc.c __alloc_pages_slowpath, nopage: a __GFP_NOFAIL request that
    cannot reclaim goes to fail with no extra reserve; one that can retries
    for ever (the model's stand-in for the OOM killer freeing memory).
    """
    return bool((gfp & _MEMALLOC and not gfp & _NOMEMALLOC) or (gfp & _NOFAIL and gfpflags_allow_blocking(gfp)))


def min_watermark(wmin: int, gfp: int) -> int:
    """The min watermark the slow path holds ``gfp`` to (mm/page_alloc.c __zone_watermark_ok, gfp_to_alloc_flags).

    ALLOC_MIN_RESERVE (= __GFP_HIGH) halves min; ALLOC_NON_BLOCK (no direct
    reclaim, no __GFP_NOMEMALLOC) then takes a quarter more.
    """
    if gfp & _HIGH:
        wmin -= wmin // 2
        if not gfpflags_allow_blocking(gfp) and not gfp & _NOMEMALLOC:
            wmin -= wmin // 4
    return wmin
