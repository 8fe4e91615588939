"""Machine descriptions: RAM, holes, reserved memory, zones, watermarks.

A machine is the input of every run. It fixes what ``arch/x86/mm/init.c``
``zone_sizes_init()`` and ``mm/memblock.c`` ``memblock_free_all()`` fix at
boot: which PFNs are RAM, which are reserved, which zone each belongs to, the
watermarks of ``mm/page_alloc.c`` ``__setup_per_zone_wmarks()`` and the
``lowmem_reserve`` of ``setup_per_zone_lowmem_reserve()``. The buddy oracle
that starts from it lives in ``page_alloc``.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Iterable, Iterator

from .errors import InvalidMachine
from .gfp import ZoneType

#: sysctl_lowmem_reserve_ratio[] defaults (mm/page_alloc.c, WMARK-LOWMEM-RESERVE).
LOWMEM_RESERVE_RATIO: Final[dict[ZoneType, int]] = {
    ZoneType.DMA: 256,
    ZoneType.DMA32: 256,
    ZoneType.NORMAL: 32,
    ZoneType.HIGHMEM: 0,
    ZoneType.MOVABLE: 0,
}
SWAP_CLUSTER_MAX: Final = 32
WATERMARK_SCALE_FACTOR: Final = 10
MAX_DMA_PFN: Final = 0x1000  # 16 MiB >> PAGE_SHIFT (ZONE-X86-CONSTS)
MAX_DMA32_PFN: Final = 0x100000  # 4 GiB >> PAGE_SHIFT (ZONE-X86-CONSTS)


@dataclass(frozen=True, order=True)
class PfnRange:
    """A half-open PFN range [start, end)."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def __contains__(self, pfn: object) -> bool:
        return isinstance(pfn, int) and self.start <= pfn < self.end


@dataclass(frozen=True)
class Watermarks:
    """WMARK_MIN / WMARK_LOW / WMARK_HIGH in pages (include/linux/mmzone.h, WMARK-ENUM)."""

    min: int = 0
    low: int = 0
    high: int = 0


@dataclass(frozen=True)
class Zone:
    """One zone: its span (holes included, ZONE-COUNTS), watermarks and lowmem_reserve.

    ``lowmem_reserve[c]`` is the extra margin a request whose highest usable
    zone is ``c`` must leave in this zone (indexed by ``ZoneType``).
    """

    zone_type: ZoneType
    start_pfn: int
    end_pfn: int
    watermark: Watermarks = Watermarks()
    lowmem_reserve: tuple[int, ...] = (0, 0, 0, 0, 0)

    @property
    def name(self) -> str:
        return self.zone_type.kernel_name

    @property
    def spanned_pages(self) -> int:
        return self.end_pfn - self.start_pfn

    def spans(self, pfn: int) -> bool:
        """zone_spans_pfn() (include/linux/mmzone.h)."""
        return self.start_pfn <= pfn < self.end_pfn


@dataclass(frozen=True)
class Machine:
    """A machine description. Build one with a preset (``machine_preset``) or ``load_machine``.

    ``ram`` lists the System RAM ranges (what is not listed is a hole);
    ``reserved`` the memblock-reserved ranges inside RAM that never reach the
    buddy allocator (HOLE-RESERVED). ``max_low_pfn`` is the lowmem/highmem
    boundary: PFNs below it have a logical address ``page_offset + pfn * page_size``.
    """

    name: str
    page_shift: int
    phys_addr_bits: int
    max_page_order: int
    ram: tuple[PfnRange, ...]
    reserved: tuple[PfnRange, ...]
    zones: tuple[Zone, ...]
    page_offset: int
    max_low_pfn: int
    word_bits: int = 64
    nr_cpus: int = 1
    section_size_bits: int = 27
    _usable: tuple[PfnRange, ...] = field(init=False, repr=False, compare=False)
    _zone_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _populated: tuple[Zone, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate(self)
        usable = tuple(_coalesce(_subtract(self.ram, self.reserved)))
        populated = tuple(z for z in self.zones if z.spanned_pages)
        object.__setattr__(self, "_usable", usable)
        object.__setattr__(self, "_populated", populated)
        object.__setattr__(self, "_zone_starts", tuple(z.start_pfn for z in populated))

    # -- sizes -------------------------------------------------------------

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def nr_page_orders(self) -> int:
        """NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1 (include/linux/mmzone.h)."""
        return self.max_page_order + 1

    @property
    def max_pfn(self) -> int:
        """One past the last RAM PFN."""
        return self.ram[-1].end if self.ram else 0

    @property
    def max_phys_pfn(self) -> int:
        """BITS-MAXPFN: 2^(phys_addr_bits - PAGE_SHIFT) PFNs are addressable."""
        return 1 << (self.phys_addr_bits - self.page_shift)

    @property
    def configured_zones(self) -> frozenset[ZoneType]:
        return frozenset(z.zone_type for z in self.zones)

    @property
    def populated_zones(self) -> tuple[Zone, ...]:
        return self._populated

    # -- lookups (O(log ranges), never a page scan) --------------------------

    def zone(self, zone_type: ZoneType) -> Zone | None:
        for z in self.zones:
            if z.zone_type == zone_type:
                return z
        return None

    def zone_of_pfn(self, pfn: int) -> Zone | None:
        """The zone spanning ``pfn`` (page_zone()), or None outside every zone."""
        i = bisect.bisect_right(self._zone_starts, pfn) - 1
        if i < 0:
            return None
        z = self._populated[i]
        return z if z.spans(pfn) else None

    def usable_range_of(self, pfn: int) -> PfnRange | None:
        """The RAM-minus-reserved range holding ``pfn``, or None (hole, reserved, beyond RAM)."""
        i = bisect.bisect_right(self._usable, PfnRange(pfn, 1 << 62)) - 1
        if i < 0:
            return None
        r = self._usable[i]
        return r if pfn in r else None

    def is_ram(self, pfn: int) -> bool:
        i = bisect.bisect_right(self.ram, PfnRange(pfn, 1 << 62)) - 1
        return i >= 0 and pfn in self.ram[i]

    def is_usable_block(self, pfn: int, nr_pages: int) -> bool:
        """Every page of [pfn, pfn + nr_pages) is RAM handed to the buddy allocator (HOLE-BOOT-HANDOVER)."""
        r = self.usable_range_of(pfn)
        return r is not None and pfn + nr_pages <= r.end

    def pfn_valid(self, pfn: int) -> bool:
        """A struct page exists: the PFN's memory section holds some RAM (HOLE-PFN-VALID, include/linux/mmzone.h).

        Holes and reserved ranges inside a present section have struct pages.
        """
        shift = self.section_size_bits - self.page_shift
        start = (pfn >> shift) << shift
        i = bisect.bisect_right(self.ram, PfnRange(start, 1 << 62))
        if i > 0 and self.ram[i - 1].end > start:
            return True
        return i < len(self.ram) and self.ram[i].start < start + (1 << shift)

    def is_lowmem(self, pfn: int) -> bool:
        """PFNs below max_low_pfn have a permanent logical address (API-PAGE-ADDRESS)."""
        return pfn < self.max_low_pfn

    def pfn_to_virt(self, pfn: int) -> int:
        """__va(PFN_PHYS(pfn)) for a lowmem PFN (include/linux/mm.h lowmem_page_address)."""
        return self.page_offset + (pfn << self.page_shift)

    def virt_to_phys(self, addr: int) -> int:
        """__pa(addr) of a logical address: the direct map is linear (arch/x86/include/asm/page.h __pa)."""
        return addr - self.page_offset

    def phys_to_virt(self, phys: int) -> int:
        """__va(phys): the logical address of a lowmem physical address (arch/x86/include/asm/page.h __va)."""
        return phys + self.page_offset

    def virt_to_pfn(self, addr: int) -> int | None:
        """__pa(addr) >> PAGE_SHIFT when ``virt_addr_valid(addr)``, else None.

        arch/x86/mm/physaddr.c __virt_addr_valid: at or above PAGE_OFFSET,
        inside the address space, and pfn_valid(); it does not compare with
        max_low_pfn, so on 32-bit an address past high_memory maps to a highmem PFN.
        """
        if addr < self.page_offset or addr >= 1 << self.word_bits:
            return None
        pfn = (addr - self.page_offset) >> self.page_shift
        return pfn if self.pfn_valid(pfn) else None

    def zone_free_ranges(self, zone: Zone) -> Iterator[PfnRange]:
        """The ranges of ``zone`` that boot hands to the buddy allocator (HOLE-BOOT-HANDOVER)."""
        for r in self._usable:
            start, end = max(r.start, zone.start_pfn), min(r.end, zone.end_pfn)
            if start < end:
                yield PfnRange(start, end)

    def managed_pages(self, zone: Zone) -> int:
        """ZONE-COUNTS: present pages minus reserved ones."""
        return sum(len(r) for r in self.zone_free_ranges(zone))

    def describe(self) -> str:
        """A human summary, as ``kmemspec machine`` prints it."""
        ps = self.page_size
        lines = [
            f"machine {self.name}: {self.word_bits}-bit, PAGE_SIZE {ps}, {self.phys_addr_bits} physical address bits "
            f"(max {_size(self.max_phys_pfn * ps)}), MAX_PAGE_ORDER {self.max_page_order}, {self.nr_cpus} CPUs",
            f"RAM {_size(sum(len(r) for r in self.ram) * ps)} in {len(self.ram)} ranges, "
            f"max_pfn {self.max_pfn:#x}, max_low_pfn {self.max_low_pfn:#x}, PAGE_OFFSET {self.page_offset:#x}",
        ]
        for r in self.ram:
            lines.append(f"  System RAM  pfn [{r.start:#x}, {r.end:#x})  {_size(len(r) * ps)}")
        for r in self.reserved:
            lines.append(f"  reserved    pfn [{r.start:#x}, {r.end:#x})  {_size(len(r) * ps)}")
        for z in self.zones:
            if not z.spanned_pages:
                lines.append(f"  zone {z.name:<8} empty")
                continue
            w = z.watermark
            reserve = ",".join(str(v) for v in z.lowmem_reserve)
            lines.append(
                f"  zone {z.name:<8} pfn [{z.start_pfn:#x}, {z.end_pfn:#x})  spanned {z.spanned_pages}  "
                f"managed {self.managed_pages(z)}  min {w.min} low {w.low} high {w.high}  lowmem_reserve [{reserve}]"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The file format ``load_machine`` reads (JSON-compatible)."""
        return {
            "name": self.name,
            "page_shift": self.page_shift,
            "phys_addr_bits": self.phys_addr_bits,
            "max_page_order": self.max_page_order,
            "word_bits": self.word_bits,
            "page_offset": self.page_offset,
            "max_low_pfn": self.max_low_pfn,
            "nr_cpus": self.nr_cpus,
            "section_size_bits": self.section_size_bits,
            "ram": [[r.start, r.end] for r in self.ram],
            "reserved": [[r.start, r.end] for r in self.reserved],
            "zones": [
                {
                    "type": z.zone_type.name,
                    "start_pfn": z.start_pfn,
                    "end_pfn": z.end_pfn,
                    "watermarks": [z.watermark.min, z.watermark.low, z.watermark.high],
                    "lowmem_reserve": list(z.lowmem_reserve),
                }
                for z in self.zones
            ],
        }


def split_aligned(r: PfnRange, max_order: int) -> Iterable[tuple[int, int]]:
    """Split a PFN range into maximal aligned blocks, as boot does (mm/memblock.c __free_pages_memory)."""
    pfn = r.start
    while pfn < r.end:
        order = min(max_order, (pfn & -pfn).bit_length() - 1) if pfn else max_order
        while pfn + (1 << order) > r.end:
            order -= 1
        yield pfn, order
        pfn += 1 << order


def _size(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):.1f} MiB"
    return f"{nbytes} B"


def _coalesce(ranges: Iterable[PfnRange]) -> Iterator[PfnRange]:
    """Abutting ranges are one: memblock merges adjacent regions of a type (mm/memblock.c memblock_merge_regions)."""
    current: PfnRange | None = None
    for r in ranges:
        if current is not None and r.start == current.end:
            current = PfnRange(current.start, r.end)
            continue
        if current is not None:
            yield current
        current = r
    if current is not None:
        yield current


def _subtract(ranges: tuple[PfnRange, ...], holes: tuple[PfnRange, ...]) -> Iterator[PfnRange]:
    for r in ranges:
        start = r.start
        for h in holes:
            if h.end <= start or h.start >= r.end:
                continue
            if h.start > start:
                yield PfnRange(start, h.start)
            start = max(start, h.end)
        if start < r.end:
            yield PfnRange(start, r.end)


def _check_ranges(name: str, ranges: tuple[PfnRange, ...]) -> None:
    prev_end = -1
    for i, r in enumerate(ranges):
        if r.start < 0 or r.start >= r.end:
            raise InvalidMachine(f"{name}[{i}]: range [{r.start}, {r.end}) is empty or negative; give [start_pfn, end_pfn) with start < end")
        if r.start < prev_end:
            raise InvalidMachine(f"{name}[{i}]: range starting at pfn {r.start:#x} overlaps or precedes the one before it; list ranges sorted and disjoint")
        prev_end = r.end


def _validate(m: Machine) -> None:
    if not 10 <= m.page_shift <= 16:
        raise InvalidMachine(f"page_shift: {m.page_shift} is outside 10..16 (x86 uses 12)")
    if m.word_bits not in (32, 64):
        raise InvalidMachine(f"word_bits: {m.word_bits} must be 32 or 64")
    if not m.page_shift < m.phys_addr_bits <= 52:
        raise InvalidMachine(f"phys_addr_bits: {m.phys_addr_bits} must be above page_shift and at most 52 (BITS-PHYSMASK)")
    if not 0 <= m.max_page_order <= m.phys_addr_bits - m.page_shift:
        raise InvalidMachine(f"max_page_order: {m.max_page_order} must be between 0 and phys_addr_bits - page_shift")
    if not m.max_page_order + m.page_shift <= m.section_size_bits <= m.phys_addr_bits:
        raise InvalidMachine(f"section_size_bits: {m.section_size_bits} must be at least max_page_order + page_shift "
                             f"({m.max_page_order + m.page_shift}) and at most phys_addr_bits (include/linux/mmzone.h build check)")
    if m.nr_cpus < 1:
        raise InvalidMachine(f"nr_cpus: {m.nr_cpus} must be at least 1")
    if not m.ram:
        raise InvalidMachine("ram: no System RAM ranges given")
    _check_ranges("ram", m.ram)
    _check_ranges("reserved", m.reserved)
    limit = 1 << (m.phys_addr_bits - m.page_shift)
    if m.ram[-1].end > limit:
        raise InvalidMachine(
            f"ram: RAM ends at pfn {m.ram[-1].end:#x} but {m.phys_addr_bits} physical address bits reach only "
            f"{limit:#x} PFNs ({_size(limit << m.page_shift)}, BITS-MAXPFN); raise phys_addr_bits or shrink RAM"
        )
    for i, r in enumerate(m.reserved):
        if not any(ram.start <= r.start and r.end <= ram.end for ram in m.ram):
            raise InvalidMachine(f"reserved[{i}]: [{r.start:#x}, {r.end:#x}) is not inside one System RAM range")
    if not m.zones:
        raise InvalidMachine("zones: no zones given; a machine needs at least ZONE_NORMAL")
    prev: Zone | None = None
    for i, z in enumerate(m.zones):
        if z.start_pfn < 0 or z.end_pfn < z.start_pfn:
            raise InvalidMachine(f"zones[{i}] ({z.name}): end_pfn {z.end_pfn:#x} is below start_pfn {z.start_pfn:#x}")
        if prev is not None:
            if z.zone_type <= prev.zone_type:
                raise InvalidMachine(f"zones[{i}] ({z.name}): zones must be listed once each in kernel order DMA, DMA32, NORMAL, HIGHMEM, MOVABLE")
            if z.spanned_pages and prev.spanned_pages and z.start_pfn < prev.end_pfn:
                raise InvalidMachine(f"zones[{i}] ({z.name}): starts at pfn {z.start_pfn:#x}, inside ZONE_{prev.zone_type.name} which ends at {prev.end_pfn:#x}; zones must not overlap")
        if z.end_pfn > m.max_pfn:
            raise InvalidMachine(f"zones[{i}] ({z.name}): ends at pfn {z.end_pfn:#x}, beyond the end of RAM {m.max_pfn:#x}")
        w = z.watermark
        if not 0 <= w.min <= w.low <= w.high:
            raise InvalidMachine(f"zones[{i}] ({z.name}).watermarks: need 0 <= min <= low <= high, got {w.min}/{w.low}/{w.high}")
        if len(z.lowmem_reserve) != len(ZoneType) or min(z.lowmem_reserve) < 0:
            raise InvalidMachine(f"zones[{i}] ({z.name}).lowmem_reserve: need {len(ZoneType)} non-negative page counts, one per zone class")
        lowmem_zone = z.zone_type <= ZoneType.NORMAL
        if z.spanned_pages and lowmem_zone and z.end_pfn > m.max_low_pfn:
            raise InvalidMachine(f"zones[{i}] ({z.name}): a lowmem zone must end at or below max_low_pfn {m.max_low_pfn:#x}")
        if z.spanned_pages and z.zone_type == ZoneType.HIGHMEM and z.start_pfn < m.max_low_pfn:
            raise InvalidMachine(f"zones[{i}] ({z.name}): ZONE_HIGHMEM must start at or above max_low_pfn {m.max_low_pfn:#x}")
        prev = z
    for i, r in enumerate(m.ram):
        covered = sum(max(0, min(r.end, z.end_pfn) - max(r.start, z.start_pfn)) for z in m.zones)
        if covered != len(r):
            raise InvalidMachine(f"ram[{i}]: [{r.start:#x}, {r.end:#x}) is not covered by zones; every RAM PFN must belong to a zone")
    if m.max_low_pfn < 0 or m.max_low_pfn > m.max_pfn:
        raise InvalidMachine(f"max_low_pfn: {m.max_low_pfn:#x} must lie within RAM (max_pfn {m.max_pfn:#x})")
    if m.page_offset % m.page_size:
        raise InvalidMachine(f"page_offset: {m.page_offset:#x} is not page aligned")
    if m.page_offset + (m.max_low_pfn << m.page_shift) > 1 << m.word_bits:
        raise InvalidMachine(f"page_offset: lowmem [{m.page_offset:#x} + {_size(m.max_low_pfn << m.page_shift)}) does not fit a {m.word_bits}-bit address space")


# -- watermarks, as mm/page_alloc.c computes them ----------------------------


def _is_highmem_class(zone_type: ZoneType) -> bool:
    return zone_type in (ZoneType.HIGHMEM, ZoneType.MOVABLE)


def kernel_watermarks(
    zones: list[tuple[ZoneType, int, int]], managed: dict[ZoneType, int], page_shift: int
) -> list[Zone]:
    """Zones with the kernel's watermarks and lowmem_reserve for the given managed page counts.

    WMARK-MINFREE: min_free_kbytes = clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)
    (mm/page_alloc.c calculate_min_free_kbytes). WMARK-SETUP: lowmem zones get
    their share of pages_min, HIGHMEM/MOVABLE clamp(managed/1024, 32, 128);
    gap = max(share/4, managed * watermark_scale_factor / 10000); low = min + gap,
    high = min + 2 * gap (__setup_per_zone_wmarks). WMARK-LOWMEM-RESERVE:
    lowmem_reserve[j] = sum(managed of zones above, up to j) / ratio
    (setup_per_zone_lowmem_reserve).
    """
    lowmem_pages = sum(n for t, n in managed.items() if not _is_highmem_class(t))
    lowmem_kbytes = lowmem_pages << (page_shift - 10)
    min_free_kbytes = min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)
    pages_min = min_free_kbytes >> (page_shift - 10)
    out: list[Zone] = []
    for zone_type, start, end in zones:
        n = managed.get(zone_type, 0)
        share = pages_min * n // lowmem_pages if lowmem_pages else 0
        if _is_highmem_class(zone_type):
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
        out.append(Zone(zone_type, start, end, Watermarks(wmin, wmin + gap, wmin + 2 * gap), tuple(reserve)))
    return out


def _build(
    name: str,
    *,
    page_shift: int,
    phys_addr_bits: int,
    max_page_order: int,
    ram: list[tuple[int, int]],
    reserved: list[tuple[int, int]],
    zones: list[tuple[ZoneType, int, int]],
    page_offset: int,
    max_low_pfn: int,
    word_bits: int,
    nr_cpus: int,
    watermarks: bool,
    section_size_bits: int | None = None,
) -> Machine:
    ram_r = tuple(PfnRange(a, b) for a, b in ram)
    res_r = tuple(PfnRange(a, b) for a, b in reserved)
    plain = tuple(Zone(t, a, b) for t, a, b in zones)
    ssb = section_size_bits if section_size_bits is not None else (27 if word_bits == 64 else 26)
    draft = Machine(name, page_shift, phys_addr_bits, max_page_order, ram_r, res_r, plain, page_offset, max_low_pfn, word_bits, nr_cpus, ssb)
    if not watermarks:
        return draft
    managed = {z.zone_type: draft.managed_pages(z) for z in plain}
    return Machine(
        name, page_shift, phys_addr_bits, max_page_order, ram_r, res_r,
        tuple(kernel_watermarks(zones, managed, page_shift)), page_offset, max_low_pfn, word_bits, nr_cpus, ssb,
    )


# -- presets -----------------------------------------------------------------

X86_64_PAGE_OFFSET: Final = 0xFFFF888000000000
X86_32_PAGE_OFFSET: Final = 0xC0000000
X86_32_MAX_LOW_PFN: Final = 0x377FE  # "895MB LOWMEM": MAXMEM less the fixmap/pkmap window (ZONE-X86-32-HIGHMEM)


def tiny() -> Machine:
    """A few hundred pages for fast exploration.

    MAX_PAGE_ORDER 4 (CONFIG_ARCH_FORCE_MAX_ORDER), zone boundaries at PFNs
    100 and 250 (not multiples of 16), a hole at [150, 170), pages 0-2
    reserved, and zero watermarks so that liveness is strict.
    """
    return _build(
        "tiny", page_shift=12, phys_addr_bits=21, max_page_order=4,
        ram=[(0, 150), (170, 384)], reserved=[(0, 3)],
        zones=[(ZoneType.DMA, 0, 100), (ZoneType.DMA32, 100, 250), (ZoneType.NORMAL, 250, 384), (ZoneType.MOVABLE, 384, 384)],
        page_offset=X86_64_PAGE_OFFSET, max_low_pfn=384, word_bits=64, nr_cpus=2, watermarks=False, section_size_bits=18,
    )


def tiny_wmark() -> Machine:
    """``tiny`` with small non-zero watermarks and lowmem_reserve, so the MAY_FAIL band between
    "a block is free" and "the low watermark holds" is reachable in a few steps (WMARK-OK)."""
    base = tiny()
    marks = {ZoneType.DMA: (Watermarks(2, 4, 6), (0, 6, 10, 10, 10)),
             ZoneType.DMA32: (Watermarks(3, 6, 9), (0, 0, 8, 8, 8)),
             ZoneType.NORMAL: (Watermarks(3, 6, 9), (0, 0, 0, 0, 0))}
    zones = tuple(Zone(z.zone_type, z.start_pfn, z.end_pfn, *marks[z.zone_type]) if z.zone_type in marks else z for z in base.zones)
    return Machine("tiny-wmark", base.page_shift, base.phys_addr_bits, base.max_page_order, base.ram, base.reserved,
                   zones, base.page_offset, base.max_low_pfn, base.word_bits, base.nr_cpus, base.section_size_bits)


def tiny_highmem() -> Machine:
    """A 32-bit tiny machine with ZONE_HIGHMEM above a lowmem boundary at PFN 200 (not 16-aligned)."""
    return _build(
        "tiny-highmem", page_shift=12, phys_addr_bits=21, max_page_order=4,
        ram=[(0, 120), (130, 330)], reserved=[(0, 2)],
        zones=[(ZoneType.DMA, 0, 70), (ZoneType.NORMAL, 70, 200), (ZoneType.HIGHMEM, 200, 330), (ZoneType.MOVABLE, 330, 330)],
        page_offset=X86_32_PAGE_OFFSET, max_low_pfn=200, word_bits=32, nr_cpus=2, watermarks=False, section_size_bits=18,
    )


def x86_64(mem_bytes: int = 8 << 30) -> Machine:
    """An x86_64 PC: e820-like RAM below 640 KiB, from 1 MiB to 3 GiB, and above 4 GiB.

    ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB, ZONE_NORMAL above
    (ZONE-X86-LIMITS), the low 1 MiB and the kernel image reserved
    (HOLE-X86-LOW1M), 46 physical address bits (BITS-PHYSMEM), kernel watermarks.
    """
    pages = mem_bytes >> 12
    if pages < 0x4000:  # RAM must hold the reserved kernel image at 16-48 MiB
        raise InvalidMachine(f"x86_64: {_size(mem_bytes)} is too small; give at least 64 MiB")
    low_top = 0xC0000  # 3 GiB: the PCI hole starts here
    ram = [(0, 0x9F)]
    if pages <= low_top:
        ram.append((0x100, pages))
    else:
        ram += [(0x100, low_top), (MAX_DMA32_PFN, MAX_DMA32_PFN + pages - low_top)]
    max_pfn = ram[-1][1]
    dma32_end = min(MAX_DMA32_PFN, max_pfn)
    return _build(
        "x86_64", page_shift=12, phys_addr_bits=46, max_page_order=10,
        ram=ram, reserved=[(0, 0x9F), (0x1000, 0x3000)],
        zones=[(ZoneType.DMA, 0, MAX_DMA_PFN), (ZoneType.DMA32, MAX_DMA_PFN, dma32_end),
               (ZoneType.NORMAL, dma32_end, max_pfn), (ZoneType.MOVABLE, max_pfn, max_pfn)],
        page_offset=X86_64_PAGE_OFFSET, max_low_pfn=max_pfn, word_bits=64, nr_cpus=4, watermarks=True,
    )


def x86_32(mem_bytes: int = 2 << 30) -> Machine:
    """A 32-bit x86 PC with highmem: ZONE_DMA below 16 MiB, ZONE_NORMAL to ~896 MiB, ZONE_HIGHMEM above.

    ZONE-X86-32-HIGHMEM: lowmem ends at PFN 0x377fe; more than 4 GiB needs
    PAE (36 physical address bits, BITS-PHYSMEM).
    """
    pages = mem_bytes >> 12
    if pages < 0x2000:
        raise InvalidMachine(f"x86_32: {_size(mem_bytes)} is too small; give at least 32 MiB")
    bits = 32 if pages <= 1 << 20 else 36
    max_low = min(X86_32_MAX_LOW_PFN, pages)
    section_bits = 26 if bits == 32 else 29  # SECTION_SIZE_BITS without / with PAE (BITS-PHYSMEM)
    return _build(
        "x86_32", page_shift=12, phys_addr_bits=bits, max_page_order=10,
        ram=[(0, 0x9F), (0x100, pages)], reserved=[(0, 0x9F), (0x1000, 0x1800)],
        zones=[(ZoneType.DMA, 0, MAX_DMA_PFN), (ZoneType.NORMAL, MAX_DMA_PFN, max_low),
               (ZoneType.HIGHMEM, max_low, pages), (ZoneType.MOVABLE, pages, pages)],
        page_offset=X86_32_PAGE_OFFSET, max_low_pfn=max_low, word_bits=32, nr_cpus=4, watermarks=True, section_size_bits=section_bits,
    )


PRESETS: Final = {"tiny": tiny, "tiny-wmark": tiny_wmark, "tiny-highmem": tiny_highmem, "x86_64": x86_64, "x86_32": x86_32}
_SIZED: Final = {"x86_64", "x86_32"}


def parse_size(text: str) -> int:
    """``"16G"``, ``"512M"``, ``"4GiB"`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT])?(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise InvalidMachine(f"memory size {text!r}: write it like 512M, 8G or 16GiB")
    shift = {"K": 10, "M": 20, "G": 30, "T": 40}.get((m.group(2) or "").upper(), 0)
    return int(m.group(1)) << shift


def machine_preset(spec: str) -> Machine:
    """A preset by name, with an optional memory size: ``tiny``, ``x86_64``, ``x86_64:16G``, ``x86_32:3G``."""
    name, _, size = spec.partition(":")
    if name not in PRESETS:
        raise InvalidMachine(f"machine {spec!r}: no such preset; presets are {', '.join(PRESETS)}, or give a .toml/.json file")
    if size:
        if name not in _SIZED:
            raise InvalidMachine(f"machine {spec!r}: preset {name} has a fixed size; sized presets are {', '.join(sorted(_SIZED))}")
        return PRESETS[name](parse_size(size))
    return PRESETS[name]()


def load_machine(spec: str | Path) -> Machine:
    """A preset spec (see ``machine_preset``) or a path to a TOML or JSON machine file."""
    text = str(spec)
    if text.endswith((".toml", ".json")) or "/" in text or Path(text).is_file():
        return machine_from_file(Path(text))
    return machine_preset(text)


def machine_from_file(path: Path) -> Machine:
    """Read a machine file. Errors name the field: ``zones[1].end_pfn: ...``."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidMachine(f"machine file {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidMachine(f"machine file {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    try:
        return machine_from_dict(data, default_name=path.stem)
    except InvalidMachine as e:
        raise InvalidMachine(f"machine file {path}: {e}") from None


def _field(data: dict[str, Any], key: str, kind: type, where: str = "", default: Any = None) -> Any:
    if key not in data:
        if default is not None:
            return default
        raise InvalidMachine(f"{where}{key}: missing")
    value = data[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, str):
            try:
                return int(value, 0)
            except ValueError:
                pass
        raise InvalidMachine(f"{where}{key}: expected an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise InvalidMachine(f"{where}{key}: expected {kind.__name__}, got {value!r}")
    return value


def _ranges(data: dict[str, Any], key: str, required: bool) -> list[tuple[int, int]]:
    items = data.get(key)
    if items is None:
        if required:
            raise InvalidMachine(f"{key}: missing (a list of [start_pfn, end_pfn] pairs)")
        return []
    if not isinstance(items, list):
        raise InvalidMachine(f"{key}: expected a list of [start_pfn, end_pfn] pairs")
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
            raise InvalidMachine(f"{key}[{i}]: expected [start_pfn, end_pfn], got {item!r}")
        out.append((item[0], item[1]))
    return out


def machine_from_dict(data: Any, default_name: str = "custom") -> Machine:
    """Build a machine from the dict form of ``Machine.to_dict`` (watermarks may be omitted: the kernel's are computed)."""
    if not isinstance(data, dict):
        raise InvalidMachine("expected a table of machine fields at the top level")
    known = {"section_size_bits", "name", "page_shift", "phys_addr_bits", "max_page_order", "word_bits", "page_offset", "max_low_pfn", "nr_cpus", "ram", "reserved", "zones", "watermarks"}
    for key in data:
        if key not in known:
            raise InvalidMachine(f"{key}: unknown field; known fields are {', '.join(sorted(known))}")
    page_shift = _field(data, "page_shift", int, default=12)
    zones_raw = data.get("zones")
    if not isinstance(zones_raw, list) or not zones_raw:
        raise InvalidMachine("zones: missing (a list of tables with type, start_pfn, end_pfn)")
    zones: list[tuple[ZoneType, int, int]] = []
    explicit: list[tuple[Watermarks, tuple[int, ...]] | None] = []
    for i, z in enumerate(zones_raw):
        where = f"zones[{i}]."
        if not isinstance(z, dict):
            raise InvalidMachine(f"zones[{i}]: expected a table with type, start_pfn, end_pfn")
        tname = _field(z, "type", str, where)
        try:
            ztype = ZoneType[tname.upper()]
        except KeyError:
            raise InvalidMachine(f"{where}type: {tname!r} is not a zone; use one of {', '.join(t.name for t in ZoneType)}") from None
        zones.append((ztype, _field(z, "start_pfn", int, where), _field(z, "end_pfn", int, where)))
        if "watermarks" in z:
            wm = z["watermarks"]
            if not (isinstance(wm, list) and len(wm) == 3 and all(isinstance(v, int) for v in wm)):
                raise InvalidMachine(f"{where}watermarks: expected [min, low, high] page counts")
            reserve = z.get("lowmem_reserve", [0] * len(ZoneType))
            if not (isinstance(reserve, list) and all(isinstance(v, int) for v in reserve)):
                raise InvalidMachine(f"{where}lowmem_reserve: expected a list of page counts")
            explicit.append((Watermarks(*wm), tuple(reserve)))
        else:
            explicit.append(None)
    ram = _ranges(data, "ram", True)
    reserved = _ranges(data, "reserved", False)
    mode = data.get("watermarks", "kernel")
    if mode not in ("kernel", "none"):
        raise InvalidMachine(f"watermarks: {mode!r} must be \"kernel\" (computed as mm/page_alloc.c does) or \"none\" (all zero)")
    max_pfn = ram[-1][1] if ram else 0
    lowmem_end = max((e for t, _, e in zones if t <= ZoneType.NORMAL), default=max_pfn)
    m = _build(
        str(data.get("name", default_name)),
        page_shift=page_shift,
        phys_addr_bits=_field(data, "phys_addr_bits", int),
        max_page_order=_field(data, "max_page_order", int, default=10),
        ram=ram, reserved=reserved, zones=zones,
        page_offset=_field(data, "page_offset", int, default=X86_64_PAGE_OFFSET),
        max_low_pfn=_field(data, "max_low_pfn", int, default=lowmem_end),
        word_bits=_field(data, "word_bits", int, default=64),
        nr_cpus=_field(data, "nr_cpus", int, default=1),
        watermarks=mode == "kernel",
        section_size_bits=_field(data, "section_size_bits", int) if "section_size_bits" in data else None,
    )
    if any(e is not None for e in explicit):
        fixed = tuple(
            Zone(z.zone_type, z.start_pfn, z.end_pfn, *e) if e is not None else z
            for z, e in zip(m.zones, explicit)
        )
        m = Machine(m.name, m.page_shift, m.phys_addr_bits, m.max_page_order, m.ram, m.reserved, fixed,
                    m.page_offset, m.max_low_pfn, m.word_bits, m.nr_cpus, m.section_size_bits)
    return m
