"""GFP flags, zone selection and the zonelist fallback.

Models ``include/linux/gfp_types.h`` (the bits and their composites) and
``include/linux/gfp.h`` (``gfp_zone()``'s GFP_ZONE_TABLE / GFP_ZONE_BAD,
``gfpflags_allow_blocking()``, ``gfp_migratetype()``). ``GFP`` is the flag
enum; ``GFP_INT`` the same bits as plain ints, for hot paths. Invariant: at
most one of __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM (GFP-ZONE-BAD). Zones
themselves live in ``machine``; which zones a request may use is
``zonelist_eligible`` here; what the slab layer drops of a mask is ``slab``'s.
"""

from __future__ import annotations

import enum
from typing import Final


class ZoneType(enum.IntEnum):
    """``enum zone_type`` in index order (include/linux/mmzone.h, fact ZONE-ENUM).

    The kernel compiles absent zones out of the enum; the model keeps a fixed
    numbering and lets a machine say which zones it configures. Relative order,
    the only thing the rules compare, is the kernel's.
    """

    DMA = 0
    DMA32 = 1
    NORMAL = 2
    HIGHMEM = 3
    MOVABLE = 4

    @property
    def kernel_name(self) -> str:
        """The name ``zone_names[]`` prints (mm/page_alloc.c, fact ZONE-NAMES)."""
        return _ZONE_NAMES[self]


_ZONE_NAMES: Final = {
    ZoneType.DMA: "DMA",
    ZoneType.DMA32: "DMA32",
    ZoneType.NORMAL: "Normal",
    ZoneType.HIGHMEM: "HighMem",
    ZoneType.MOVABLE: "Movable",
}


class GFP(enum.IntFlag):
    """The ``__GFP_*`` bits with the kernel's values (gfp_types.h, fact GFP-BITS).

    Config-dependent bits (SKIP_ZERO, SKIP_KASAN, NOLOCKDEP, NO_OBJ_EXT) are 0
    in the configuration the model follows and are therefore absent.
    """

    DMA = 0x01
    HIGHMEM = 0x02
    DMA32 = 0x04
    MOVABLE = 0x08
    RECLAIMABLE = 0x10
    HIGH = 0x20
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    WRITE = 0x1000
    NOWARN = 0x2000
    RETRY_MAYFAIL = 0x4000
    NOFAIL = 0x8000
    NORETRY = 0x10000
    MEMALLOC = 0x20000
    COMP = 0x40000
    NOMEMALLOC = 0x80000
    HARDWALL = 0x100000
    THISNODE = 0x200000
    ACCOUNT = 0x400000
    ZEROTAGS = 0x800000


__GFP_DMA: Final = GFP.DMA
__GFP_HIGHMEM: Final = GFP.HIGHMEM
__GFP_DMA32: Final = GFP.DMA32
__GFP_MOVABLE: Final = GFP.MOVABLE
__GFP_RECLAIMABLE: Final = GFP.RECLAIMABLE
__GFP_HIGH: Final = GFP.HIGH
__GFP_IO: Final = GFP.IO
__GFP_FS: Final = GFP.FS
__GFP_ZERO: Final = GFP.ZERO
__GFP_DIRECT_RECLAIM: Final = GFP.DIRECT_RECLAIM
__GFP_KSWAPD_RECLAIM: Final = GFP.KSWAPD_RECLAIM
__GFP_WRITE: Final = GFP.WRITE
__GFP_NOWARN: Final = GFP.NOWARN
__GFP_RETRY_MAYFAIL: Final = GFP.RETRY_MAYFAIL
__GFP_NOFAIL: Final = GFP.NOFAIL
__GFP_NORETRY: Final = GFP.NORETRY
__GFP_MEMALLOC: Final = GFP.MEMALLOC
__GFP_COMP: Final = GFP.COMP
__GFP_NOMEMALLOC: Final = GFP.NOMEMALLOC
__GFP_HARDWALL: Final = GFP.HARDWALL
__GFP_THISNODE: Final = GFP.THISNODE
__GFP_ACCOUNT: Final = GFP.ACCOUNT
__GFP_ZEROTAGS: Final = GFP.ZEROTAGS

# Composites (gfp_types.h, facts GFP-ZONEMASK, GFP-COMBOS, GFP-NOWAIT).
GFP_ZONEMASK: Final = GFP.DMA | GFP.HIGHMEM | GFP.DMA32 | GFP.MOVABLE
__GFP_RECLAIM: Final = GFP.DIRECT_RECLAIM | GFP.KSWAPD_RECLAIM
GFP_ATOMIC: Final = GFP.HIGH | GFP.KSWAPD_RECLAIM
GFP_KERNEL: Final = __GFP_RECLAIM | GFP.IO | GFP.FS
GFP_KERNEL_ACCOUNT: Final = GFP_KERNEL | GFP.ACCOUNT
GFP_NOWAIT: Final = GFP.KSWAPD_RECLAIM | GFP.NOWARN
GFP_NOIO: Final = __GFP_RECLAIM
GFP_NOFS: Final = __GFP_RECLAIM | GFP.IO
GFP_USER: Final = __GFP_RECLAIM | GFP.IO | GFP.FS | GFP.HARDWALL
GFP_DMA: Final = GFP.DMA
GFP_DMA32: Final = GFP.DMA32
GFP_HIGHUSER: Final = GFP_USER | GFP.HIGHMEM
GFP_HIGHUSER_MOVABLE: Final = GFP_HIGHUSER | GFP.MOVABLE
GFP_TRANSHUGE_LIGHT: Final = (GFP_HIGHUSER_MOVABLE | GFP.COMP | GFP.NOMEMALLOC | GFP.NOWARN) & ~__GFP_RECLAIM
GFP_TRANSHUGE: Final = GFP_TRANSHUGE_LIGHT | GFP.DIRECT_RECLAIM

#: Every named composite, largest first: the formatter prefers the name that
#: covers most bits, as the kernel's %pGg printing does (mm/debug.c gfpflag_names).
GFP_COMPOSITES: Final[tuple[tuple[str, int], ...]] = (
    ("GFP_TRANSHUGE", GFP_TRANSHUGE),
    ("GFP_TRANSHUGE_LIGHT", GFP_TRANSHUGE_LIGHT),
    ("GFP_HIGHUSER_MOVABLE", GFP_HIGHUSER_MOVABLE),
    ("GFP_HIGHUSER", GFP_HIGHUSER),
    ("GFP_USER", GFP_USER),
    ("GFP_KERNEL_ACCOUNT", GFP_KERNEL_ACCOUNT),
    ("GFP_KERNEL", GFP_KERNEL),
    ("GFP_NOFS", GFP_NOFS),
    ("GFP_ATOMIC", GFP_ATOMIC),
    ("GFP_NOIO", GFP_NOIO),
    ("GFP_NOWAIT", GFP_NOWAIT),
    ("GFP_DMA32", GFP_DMA32),
    ("GFP_DMA", GFP_DMA),
)

#: GFP_ZONE_TABLE (include/linux/gfp.h, fact GFP-ZONE-TABLE). Keys are
#: ``gfp & GFP_ZONEMASK``; a value is the zone the kernel names, before the
#: OPT_ZONE_* fallback to ZONE_NORMAL for zones a machine does not configure.
#:
#:   bits  DMA32 HIGHMEM? ...      zone
#:   0x0   -                       NORMAL
#:   0x1   DMA                     OPT_ZONE_DMA
#:   0x2   HIGHMEM                 OPT_ZONE_HIGHMEM
#:   0x4   DMA32                   OPT_ZONE_DMA32
#:   0x8   MOVABLE                 NORMAL
#:   0x9   MOVABLE|DMA             OPT_ZONE_DMA
#:   0xa   MOVABLE|HIGHMEM         MOVABLE
#:   0xc   MOVABLE|DMA32           OPT_ZONE_DMA32
GFP_ZONE_TABLE: Final[dict[int, ZoneType]] = {
    0x0: ZoneType.NORMAL,
    0x1: ZoneType.DMA,
    0x2: ZoneType.HIGHMEM,
    0x4: ZoneType.DMA32,
    0x8: ZoneType.NORMAL,
    0x9: ZoneType.DMA,
    0xA: ZoneType.MOVABLE,
    0xC: ZoneType.DMA32,
}

#: GFP_ZONE_BAD (include/linux/gfp.h, rule GFP-ZONE-BAD): at most one of
#: DMA / DMA32 / HIGHMEM may be set.
GFP_ZONE_BAD: Final[frozenset[int]] = frozenset({0x3, 0x5, 0x6, 0x7, 0xB, 0xD, 0xE, 0xF})


class GFP_INT:  # noqa: N801 (the plain-int twin of GFP)
    """The ``GFP`` bits and masks as plain ints, for hot paths: ``gfp & GFP_INT.ZERO``.

    IntFlag arithmetic builds an enum per operation; these are the kernel's
    ``___GFP_*`` values (include/linux/gfp_types.h), which are plain too.
    """

    DMA: Final = int(GFP.DMA)
    HIGHMEM: Final = int(GFP.HIGHMEM)
    DMA32: Final = int(GFP.DMA32)
    MOVABLE: Final = int(GFP.MOVABLE)
    RECLAIMABLE: Final = int(GFP.RECLAIMABLE)
    HIGH: Final = int(GFP.HIGH)
    IO: Final = int(GFP.IO)
    FS: Final = int(GFP.FS)
    ZERO: Final = int(GFP.ZERO)
    DIRECT_RECLAIM: Final = int(GFP.DIRECT_RECLAIM)
    KSWAPD_RECLAIM: Final = int(GFP.KSWAPD_RECLAIM)
    WRITE: Final = int(GFP.WRITE)
    NOWARN: Final = int(GFP.NOWARN)
    RETRY_MAYFAIL: Final = int(GFP.RETRY_MAYFAIL)
    NOFAIL: Final = int(GFP.NOFAIL)
    NORETRY: Final = int(GFP.NORETRY)
    MEMALLOC: Final = int(GFP.MEMALLOC)
    COMP: Final = int(GFP.COMP)
    NOMEMALLOC: Final = int(GFP.NOMEMALLOC)
    HARDWALL: Final = int(GFP.HARDWALL)
    THISNODE: Final = int(GFP.THISNODE)
    ACCOUNT: Final = int(GFP.ACCOUNT)
    ZEROTAGS: Final = int(GFP.ZEROTAGS)
    ZONEMASK: Final = int(GFP_ZONEMASK)
    RECLAIM: Final = int(GFP.DIRECT_RECLAIM | GFP.KSWAPD_RECLAIM)  # __GFP_RECLAIM


def gfp_zone_bad(gfp_mask: int) -> bool:
    """True for a zone-modifier combination in GFP_ZONE_BAD (GFP-ZONE-BAD, include/linux/gfp.h)."""
    return (gfp_mask & GFP_INT.ZONEMASK) in GFP_ZONE_BAD


def gfp_zone(gfp_mask: int, configured: frozenset[ZoneType]) -> ZoneType:
    """The highest zone a request may use (``gfp_zone()``, include/linux/gfp.h).

    Fact GFP-ZONE-TABLE: OPT_ZONE_DMA/DMA32/HIGHMEM fall back to ZONE_NORMAL when
    the machine does not configure that zone. A bad combination is
    ``VM_BUG_ON`` under DEBUG_VM; without it the table slot is 0, i.e. the
    lowest configured zone (fact GFP-ZONE-BAD-NODEBUG), which is what this returns.
    """
    bits = gfp_mask & GFP_INT.ZONEMASK
    if bits in GFP_ZONE_BAD:
        return min(configured)
    zone = GFP_ZONE_TABLE[bits]
    # Only DMA, DMA32 and HIGHMEM are OPT_ZONE_*; ZONE_MOVABLE is always in enum zone_type.
    if zone not in configured and zone is not ZoneType.MOVABLE:
        return ZoneType.NORMAL
    return zone


def zonelist_eligible(zone: ZoneType, highest_zoneidx: ZoneType) -> bool:
    """Fact ZONE-FALLBACK: a request may be served from its zone or any lower one, never a higher one.

    mm/page_alloc.c ``get_page_from_freelist`` walks the zonelist skipping
    zones above ``highest_zoneidx`` (include/linux/mmzone.h ``next_zones_zonelist``).
    """
    return zone <= highest_zoneidx


def gfpflags_allow_blocking(gfp_mask: int) -> bool:
    """Fact CTX-BLOCKING: a request may sleep iff it has __GFP_DIRECT_RECLAIM (include/linux/gfp.h)."""
    return bool(gfp_mask & GFP_INT.DIRECT_RECLAIM)


def format_gfp(gfp_mask: int) -> str:
    """Flags as the kernel prints them: largest composite first, then ``__GFP_*`` bits.

    ``format_gfp(GFP_KERNEL | __GFP_ZERO) == "GFP_KERNEL|__GFP_ZERO"``; unknown
    bits print as hex. The same greedy naming as mm/debug.c's gfpflag_names.
    """
    rest = int(gfp_mask)
    parts: list[str] = []
    for name, value in GFP_COMPOSITES:
        if value and rest & value == value and int(gfp_mask) & value == value:
            parts.append(name)
            rest &= ~value
            break
    for bit in GFP:
        if rest & bit:
            parts.append(f"__GFP_{bit.name}")
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) if parts else "0"


def parse_gfp(text: str) -> int:
    """Inverse of :func:`format_gfp`: ``"GFP_KERNEL|__GFP_ZERO"`` -> int. Raises ValueError naming the bad token."""
    value = 0
    for token in (t.strip() for t in text.split("|")):
        if not token:
            raise ValueError(f"empty GFP flag in {text!r}")
        if token.startswith("0x") or token.isdigit():
            value |= int(token, 0)
        elif token in _NAMED:
            value |= _NAMED[token]
        else:
            raise ValueError(f"unknown GFP flag {token!r} in {text!r}")
    return value


_NAMED: Final[dict[str, int]] = {
    **{name: int(v) for name, v in GFP_COMPOSITES},
    **{f"__GFP_{bit.name}": int(bit) for bit in GFP},
    "__GFP_RECLAIM": int(__GFP_RECLAIM),
    "GFP_ZONEMASK": int(GFP_ZONEMASK),
}
