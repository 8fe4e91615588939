"""Machine descriptions: RAM, holes, reserved memory, zones, and the address conversions.

A machine is the input of every run. It fixes what ``arch/x86/mm/init.c``
``zone_sizes_init()`` and ``mm/memblock.c`` ``memblock_free_all()`` fix at
boot: which PFNs are RAM, which are reserved, which zone each belongs to, the
watermarks and lowmem_reserve each zone keeps, where the direct map starts
(``page_offset``, so ``virt_to_phys``/``phys_to_virt`` as
``arch/x86/include/asm/page.h`` __pa/__va) and where lowmem ends
(``max_low_pfn``).

Invariants, checked when a Machine is made (presets and files alike): RAM
and reserved ranges are sorted and disjoint, reserved lies inside RAM, zones
are listed once each in kernel order and cover every RAM PFN, lowmem zones
end at or below max_low_pfn, and everything fits the physical and virtual
address widths. Lookups cost O(log ranges); nothing scans pages.

Neighbours: watermark arithmetic is ``watermarks``; the file format is
``_machine_format``; the named presets are ``presets``; the buddy oracle
that starts from a machine is ``page_alloc``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Iterable, Iterator

from . import _machine_format
from ._internal import format_size as _size
from .errors import InvalidMachine
from .gfp import ZoneType
from .watermarks import Watermarks, kernel_watermarks

X86_64_PAGE_OFFSET: Final = 0xFFFF888000000000
"""x86_64's PAGE_OFFSET (4-level paging, no KASLR): the direct map's base, and a machine file's default."""
X86_64_VMALLOC: Final = (0xFFFFC90000000000, 0xFFFFE90000000000)
"""x86_64's vmalloc area with 4-level paging, no KASLR: VMALLOC_START and VMALLOC_END + 1 (VMALLOC_SIZE_TB_L4 32 TiB,
arch/x86/include/asm/pgtable_64_types.h)."""
VMALLOC_OFFSET: Final = 8 << 20
"""x86_32: the vmalloc area starts this far above high_memory (arch/x86/include/asm/pgtable_32_areas.h)."""
X86_32_VMALLOC_END: Final = 0xFF7FE000
"""x86_32 with HIGHMEM: VMALLOC_END = PKMAP_BASE - 2 pages, PKMAP_BASE 0xff800000 below the LDT, CPU entry area
and fixmap (arch/x86/include/asm/pgtable_32_areas.h); MAXMEM = VMALLOC_END - PAGE_OFFSET - 128 MiB gives lowmem's end."""
X86_32_FIXADDR_START: Final = 0xFFE00000
"""x86_32's FIXADDR_START depends on the build (kmap_local slots are KM_MAX_IDX * NR_CPUS pages of the fixmap):
the 2 MiB below the top, where i386 builds' fixmaps lie (arch/x86/include/asm/fixmap.h). A machine file may give its own."""


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
class Zone:
    """One zone: its span (holes included, fact ZONE-COUNTS), watermarks and lowmem_reserve.

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
    buddy allocator (fact HOLE-RESERVED). ``max_low_pfn`` is the lowmem/highmem
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
    vmalloc_start: int | None = None  # None: the architecture's (32-bit: high_memory + VMALLOC_OFFSET)
    vmalloc_end: int | None = None  # one past the last vmalloc address; None: the architecture's
    fixaddr_start: int | None = None  # FIXADDR_START; None: the architecture's
    _usable: tuple[PfnRange, ...] = field(init=False, repr=False, compare=False)
    _zone_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _populated: tuple[Zone, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key, value in zip(("vmalloc_start", "vmalloc_end", "fixaddr_start"), self._default_layout()):
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        _check(self)
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
        """Fact BITS-MAXPFN: 2^(phys_addr_bits - PAGE_SHIFT) PFNs are addressable."""
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
        """Every page of [pfn, pfn + nr_pages) is RAM handed to the buddy allocator (fact HOLE-BOOT-HANDOVER)."""
        r = self.usable_range_of(pfn)
        return r is not None and pfn + nr_pages <= r.end

    def pfn_valid(self, pfn: int) -> bool:
        """A struct page exists: the PFN's memory section holds some RAM (fact HOLE-PFN-VALID, include/linux/mmzone.h).

        Holes and reserved ranges inside a present section have struct pages.
        """
        shift = self.section_size_bits - self.page_shift
        start = (pfn >> shift) << shift
        i = bisect.bisect_right(self.ram, PfnRange(start, 1 << 62))
        if i > 0 and self.ram[i - 1].end > start:
            return True
        return i < len(self.ram) and self.ram[i].start < start + (1 << shift)

    def is_lowmem(self, pfn: int) -> bool:
        """PFNs below max_low_pfn have a permanent logical address (fact API-PAGE-ADDRESS)."""
        return pfn < self.max_low_pfn

    def pfn_to_virt(self, pfn: int) -> int:
        """__va(PFN_PHYS(pfn)) for a lowmem PFN (include/linux/mm.h lowmem_page_address)."""
        return self.page_offset + (pfn << self.page_shift)

    def pfn_to_phys(self, pfn: int) -> int:
        """PFN_PHYS(pfn): the physical address of the page's first byte (include/linux/pfn.h)."""
        return pfn << self.page_shift

    def phys_to_pfn(self, phys: int) -> int:
        """PHYS_PFN(phys): the page holding physical address ``phys`` (include/linux/pfn.h)."""
        return phys >> self.page_shift

    def virt_to_phys(self, addr: int) -> int:
        """__pa(addr) for a logical (direct map) address: addr - PAGE_OFFSET (arch/x86/include/asm/page.h).

        The caller knows ``addr`` is a lowmem logical address (``virt_to_pfn``
        says whether it is one); this is the arithmetic, as the kernel's is.
        """
        return addr - self.page_offset

    def phys_to_virt(self, phys: int) -> int:
        """__va(phys): the logical address of physical address ``phys`` in lowmem (arch/x86/include/asm/page.h)."""
        return phys + self.page_offset

    @property
    def high_memory(self) -> int:
        """high_memory: one past lowmem's last logical address, __va(max_low_pfn << PAGE_SHIFT) (arch/x86/mm/init_32.c)."""
        return self.page_offset + (self.max_low_pfn << self.page_shift)

    def _default_layout(self) -> tuple[int, int, int]:
        """(VMALLOC_START, VMALLOC_END + 1, FIXADDR_START) of the architecture, for fields a machine leaves out."""
        if self.word_bits == 32:
            return self.high_memory + VMALLOC_OFFSET, X86_32_VMALLOC_END, X86_32_FIXADDR_START
        return X86_64_VMALLOC[0], X86_64_VMALLOC[1], (1 << self.word_bits) - (4 << 20)

    def is_vmalloc_addr(self, addr: int) -> bool:
        """VMALLOC_START <= addr < VMALLOC_END (include/linux/mm.h is_vmalloc_addr)."""
        return self.vmalloc_start <= addr < self.vmalloc_end  # type: ignore[operator]

    def virt_to_pfn(self, addr: int) -> int | None:
        """__pa(addr) >> PAGE_SHIFT when ``virt_addr_valid(addr)``, else None.

        arch/x86/mm/physaddr.c __virt_addr_valid: at or above PAGE_OFFSET,
        inside the address space, and pfn_valid(); on 32-bit not a vmalloc
        address and below FIXADDR_START. It does not compare with max_low_pfn,
        so on 32-bit an address past high_memory (in the gap below the vmalloc
        area, or in the pkmap and CPU entry areas above it) maps to a highmem PFN.
        """
        if addr < self.page_offset or addr >= 1 << self.word_bits:
            return None
        if self.word_bits == 32 and (self.is_vmalloc_addr(addr) or addr >= self.fixaddr_start):  # type: ignore[operator]
            return None
        pfn = (addr - self.page_offset) >> self.page_shift
        return pfn if self.pfn_valid(pfn) else None

    def zone_free_ranges(self, zone: Zone) -> Iterator[PfnRange]:
        """The ranges of ``zone`` that boot hands to the buddy allocator (fact HOLE-BOOT-HANDOVER)."""
        for r in self._usable:
            start, end = max(r.start, zone.start_pfn), min(r.end, zone.end_pfn)
            if start < end:
                yield PfnRange(start, end)

    def managed_pages(self, zone: Zone) -> int:
        """Fact ZONE-COUNTS: present pages minus reserved ones."""
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
        """The file format ``load_machine`` reads (JSON-compatible; ``_machine_format.FIELDS``)."""
        return _machine_format.write(self)


def split_aligned(r: PfnRange, max_order: int) -> Iterable[tuple[int, int]]:
    """Split a PFN range into maximal aligned blocks, as boot does (mm/memblock.c __free_pages_memory)."""
    pfn = r.start
    while pfn < r.end:
        order = min(max_order, (pfn & -pfn).bit_length() - 1) if pfn else max_order
        while pfn + (1 << order) > r.end:
            order -= 1
        yield pfn, order
        pfn += 1 << order


def split_aligned_runs(r: PfnRange, max_order: int) -> Iterator[tuple[int, int, int]]:
    """``split_aligned`` as (pfn, order, count) rows: the MAX_PAGE_ORDER blocks in the middle of ``r`` are one row.

    O(MAX_PAGE_ORDER) rows for any length, so boot costs O(ranges), not O(memory / 2^MAX_PAGE_ORDER).
    """
    top = 1 << max_order
    first = -(-r.start // top) * top
    last = r.end // top * top
    if first >= last:  # no whole top-order block: a few small ones
        for pfn, order in split_aligned(r, max_order):
            yield pfn, order, 1
        return
    for pfn, order in split_aligned(PfnRange(r.start, first), max_order):
        yield pfn, order, 1
    yield first, max_order, (last - first) >> max_order
    for pfn, order in split_aligned(PfnRange(last, r.end), max_order):
        yield pfn, order, 1


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


def _check(m: Machine) -> None:
    """A Machine's invariants, in the order their errors have always been reported."""
    _check_geometry(m)
    _check_ram(m)
    _check_zones(m)
    _check_ram_in_zones(m)
    _check_direct_map(m)


def _check_geometry(m: Machine) -> None:
    """Page size, word size, address widths, MAX_PAGE_ORDER, SECTION_SIZE_BITS and CPUs."""
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


def _check_ram(m: Machine) -> None:
    """RAM and reserved ranges: sorted, disjoint, addressable (fact BITS-MAXPFN), reserved inside RAM."""
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


def _check_zones(m: Machine) -> None:
    """Zones: once each in kernel order, disjoint, inside RAM, sane watermarks, lowmem below max_low_pfn and highmem above."""
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


def _check_ram_in_zones(m: Machine) -> None:
    """Every RAM PFN belongs to a zone."""
    for i, r in enumerate(m.ram):
        covered = sum(max(0, min(r.end, z.end_pfn) - max(r.start, z.start_pfn)) for z in m.zones)
        if covered != len(r):
            raise InvalidMachine(f"ram[{i}]: [{r.start:#x}, {r.end:#x}) is not covered by zones; every RAM PFN must belong to a zone")


def _check_direct_map(m: Machine) -> None:
    """max_low_pfn lies in RAM; the direct map starts page aligned and lowmem fits the virtual address space."""
    if m.max_low_pfn < 0 or m.max_low_pfn > m.max_pfn:
        raise InvalidMachine(f"max_low_pfn: {m.max_low_pfn:#x} must lie within RAM (max_pfn {m.max_pfn:#x})")
    if m.page_offset % m.page_size:
        raise InvalidMachine(f"page_offset: {m.page_offset:#x} is not page aligned")
    if m.page_offset + (m.max_low_pfn << m.page_shift) > 1 << m.word_bits:
        raise InvalidMachine(f"page_offset: lowmem [{m.page_offset:#x} + {_size(m.max_low_pfn << m.page_shift)}) does not fit a {m.word_bits}-bit address space")
    top = 1 << m.word_bits
    vs, ve, fs = m.vmalloc_start, m.vmalloc_end, m.fixaddr_start
    assert vs is not None and ve is not None and fs is not None
    if not m.high_memory <= vs < ve <= top:
        raise InvalidMachine(f"vmalloc_start, vmalloc_end: [{vs:#x}, {ve:#x}) must be a non-empty range between high_memory {m.high_memory:#x} "
                             f"and {top:#x}; on 32-bit lowmem ends below VMALLOC_END - PAGE_OFFSET - 128 MiB (MAXMEM): lower max_low_pfn "
                             "or give vmalloc_start and vmalloc_end")
    if not ve <= fs < top or fs % m.page_size:
        raise InvalidMachine(f"fixaddr_start: {fs:#x} must be a page-aligned address at or above vmalloc_end {ve:#x} and below {top:#x}")


# -- making machines ---------------------------------------------------------


def build_machine(
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
    vmalloc_start: int | None = None,
    vmalloc_end: int | None = None,
    fixaddr_start: int | None = None,
) -> Machine:
    """A Machine from plain ranges, with the kernel's watermarks for its managed pages (``watermarks``) or none.

    ``section_size_bits`` None: x86's SECTION_SIZE_BITS, 27 on 64-bit, 26 on 32-bit without PAE.
    """
    ram_r = tuple(PfnRange(a, b) for a, b in ram)
    res_r = tuple(PfnRange(a, b) for a, b in reserved)
    plain = tuple(Zone(t, a, b) for t, a, b in zones)
    ssb = section_size_bits if section_size_bits is not None else (27 if word_bits == 64 else 26)
    draft = Machine(name, page_shift, phys_addr_bits, max_page_order, ram_r, res_r, plain, page_offset, max_low_pfn, word_bits, nr_cpus, ssb,
                    vmalloc_start, vmalloc_end, fixaddr_start)
    if not watermarks:
        return draft
    managed = {z.zone_type: draft.managed_pages(z) for z in plain}
    marked = tuple(Zone(t, a, b, *marks) for (t, a, b), marks in zip(zones, kernel_watermarks(zones, managed, page_shift)))
    return replace(draft, zones=marked)


def machine_from_dict(data: Any, default_name: str = "custom") -> Machine:
    """Build a machine from the dict form of ``Machine.to_dict`` (watermarks may be omitted: the kernel's are computed)."""
    v = _machine_format.read(data)
    zones = [(t, a, b) for t, a, b, _ in v["zones"]]
    max_pfn = v["ram"][-1][1] if v["ram"] else 0
    lowmem_end = max((e for t, _, e in zones if t <= ZoneType.NORMAL), default=max_pfn)
    m = build_machine(
        v["name"] if v["name"] is not None else default_name,
        page_shift=v["page_shift"], phys_addr_bits=v["phys_addr_bits"], max_page_order=v["max_page_order"],
        ram=v["ram"], reserved=v["reserved"], zones=zones,
        page_offset=v["page_offset"] if v["page_offset"] is not None else X86_64_PAGE_OFFSET,
        max_low_pfn=v["max_low_pfn"] if v["max_low_pfn"] is not None else lowmem_end,
        word_bits=v["word_bits"], nr_cpus=v["nr_cpus"], watermarks=v["watermarks"] == "kernel",
        section_size_bits=v["section_size_bits"],
        vmalloc_start=v["vmalloc_start"], vmalloc_end=v["vmalloc_end"], fixaddr_start=v["fixaddr_start"],
    )
    explicit = [e for *_, e in v["zones"]]
    if any(e is not None for e in explicit):
        fixed = tuple(Zone(z.zone_type, z.start_pfn, z.end_pfn, Watermarks(*e[0]), e[1]) if e is not None else z
                      for z, e in zip(m.zones, explicit))
        m = replace(m, zones=fixed)
    return m


def machine_from_file(path: Path) -> Machine:
    """Read a machine file. Errors name the field: ``zones[1].end_pfn: ...``."""
    data = _machine_format.read_file(path)
    try:
        return machine_from_dict(data, default_name=path.stem)
    except InvalidMachine as e:
        raise InvalidMachine(f"machine file {path}: {e}") from None
