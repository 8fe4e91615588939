"""Named machines: the tiny exploration machines and x86 PCs of a given size.

``machine_preset("x86_64:16G")`` builds one. The tiny machines keep MAX_PAGE_ORDER
small and put zone boundaries, holes and reserved pages where the rules are
easy to reach; the x86 PCs follow what arch/x86 sets up at boot (e820-like
RAM, ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB or ZONE_HIGHMEM above
lowmem on 32-bit, the kernel's watermarks).

Neighbours: the Machine they build and ``load_machine`` (a preset or a file)
are ``machine``'s; the watermarks ``watermarks``'.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Final

from ._internal import format_size
from .errors import InvalidMachine
from .gfp import ZoneType
from .machine import X86_64_PAGE_OFFSET, Machine, Zone, build_machine, machine_from_file
from .watermarks import Watermarks

MAX_DMA_PFN: Final = 0x1000  # 16 MiB >> PAGE_SHIFT (fact ZONE-X86-CONSTS)
MAX_DMA32_PFN: Final = 0x100000  # 4 GiB >> PAGE_SHIFT (fact ZONE-X86-CONSTS)
X86_32_PAGE_OFFSET: Final = 0xC0000000
X86_32_MAX_LOW_PFN: Final = 0x377FE  # "895MB LOWMEM": MAXMEM less the fixmap/pkmap window (fact ZONE-X86-32-HIGHMEM)


def tiny() -> Machine:
    """A few hundred pages for fast exploration.

    MAX_PAGE_ORDER 4 (CONFIG_ARCH_FORCE_MAX_ORDER), zone boundaries at PFNs
    100 and 250 (not multiples of 16), a hole at [150, 170), pages 0-2
    reserved, and zero watermarks so that liveness is strict.
    """
    return build_machine(
        "tiny", page_shift=12, phys_addr_bits=21, max_page_order=4,
        ram=[(0, 150), (170, 384)], reserved=[(0, 3)],
        zones=[(ZoneType.DMA, 0, 100), (ZoneType.DMA32, 100, 250), (ZoneType.NORMAL, 250, 384), (ZoneType.MOVABLE, 384, 384)],
        page_offset=X86_64_PAGE_OFFSET, max_low_pfn=384, word_bits=64, nr_cpus=2, watermarks=False, section_size_bits=18,
    )


def tiny_wmark() -> Machine:
    """``tiny`` with small non-zero watermarks and lowmem_reserve, so the MAY_FAIL band between
    "a block is free" and "the low watermark holds" is reachable in a few steps (fact WMARK-OK)."""
    base = tiny()
    marks = {ZoneType.DMA: (Watermarks(2, 4, 6), (0, 6, 10, 10, 10)),
             ZoneType.DMA32: (Watermarks(3, 6, 9), (0, 0, 8, 8, 8)),
             ZoneType.NORMAL: (Watermarks(3, 6, 9), (0, 0, 0, 0, 0))}
    zones = tuple(Zone(z.zone_type, z.start_pfn, z.end_pfn, *marks[z.zone_type]) if z.zone_type in marks else z for z in base.zones)
    return replace(base, name="tiny-wmark", zones=zones)


def tiny_highmem() -> Machine:
    """A 32-bit tiny machine with ZONE_HIGHMEM above a lowmem boundary at PFN 200 (not 16-aligned)."""
    return build_machine(
        "tiny-highmem", page_shift=12, phys_addr_bits=21, max_page_order=4,
        ram=[(0, 120), (130, 330)], reserved=[(0, 2)],
        zones=[(ZoneType.DMA, 0, 70), (ZoneType.NORMAL, 70, 200), (ZoneType.HIGHMEM, 200, 330), (ZoneType.MOVABLE, 330, 330)],
        page_offset=X86_32_PAGE_OFFSET, max_low_pfn=200, word_bits=32, nr_cpus=2, watermarks=False, section_size_bits=18,
    )


def x86_64(mem_bytes: int = 8 << 30) -> Machine:
    """An x86_64 PC: e820-like RAM below 640 KiB, from 1 MiB to 3 GiB, and above 4 GiB.

    ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB, ZONE_NORMAL above
    (fact ZONE-X86-LIMITS), the low 1 MiB and the kernel image reserved
    (fact HOLE-X86-LOW1M), 46 physical address bits (fact BITS-PHYSMEM), kernel watermarks.
    The RAM behind the PCI hole is remapped above 4 GiB while the address bits
    leave room for it; at the top (x86_64:64T) RAM ends at the 64 TiB limit.
    """
    pages = mem_bytes >> 12
    if pages < 0x4000:  # RAM must hold the reserved kernel image at 16-48 MiB
        raise InvalidMachine(f"x86_64: {format_size(mem_bytes)} is too small; give at least 64 MiB")
    limit = 1 << (46 - 12)
    if pages > limit:
        raise InvalidMachine(f"x86_64: {format_size(mem_bytes)} is more than the 64 TiB that 46 physical address bits reach "
                             "(BITS-PHYSMEM); the largest is x86_64:64T")
    low_top = 0xC0000  # 3 GiB: the PCI hole starts here
    ram = [(0, 0x9F)]
    if pages <= low_top:
        ram.append((0x100, pages))
    else:
        ram += [(0x100, low_top), (MAX_DMA32_PFN, min(limit, MAX_DMA32_PFN + pages - low_top))]
    max_pfn = ram[-1][1]
    dma32_end = min(MAX_DMA32_PFN, max_pfn)
    return build_machine(
        "x86_64", page_shift=12, phys_addr_bits=46, max_page_order=10,
        ram=ram, reserved=[(0, 0x9F), (0x1000, 0x3000)],
        zones=[(ZoneType.DMA, 0, MAX_DMA_PFN), (ZoneType.DMA32, MAX_DMA_PFN, dma32_end),
               (ZoneType.NORMAL, dma32_end, max_pfn), (ZoneType.MOVABLE, max_pfn, max_pfn)],
        page_offset=X86_64_PAGE_OFFSET, max_low_pfn=max_pfn, word_bits=64, nr_cpus=4, watermarks=True,
    )


def x86_32(mem_bytes: int = 2 << 30) -> Machine:
    """A 32-bit x86 PC with highmem: ZONE_DMA below 16 MiB, ZONE_NORMAL to ~896 MiB, ZONE_HIGHMEM above.

    Fact ZONE-X86-32-HIGHMEM: lowmem ends at PFN 0x377fe; more than 4 GiB needs
    PAE (36 physical address bits, fact BITS-PHYSMEM).
    """
    pages = mem_bytes >> 12
    if pages < 0x2000:
        raise InvalidMachine(f"x86_32: {format_size(mem_bytes)} is too small; give at least 32 MiB")
    bits = 32 if pages <= 1 << 20 else 36
    max_low = min(X86_32_MAX_LOW_PFN, pages)
    section_bits = 26 if bits == 32 else 29  # SECTION_SIZE_BITS without / with PAE (fact BITS-PHYSMEM)
    return build_machine(
        "x86_32", page_shift=12, phys_addr_bits=bits, max_page_order=10,
        ram=[(0, 0x9F), (0x100, pages)], reserved=[(0, 0x9F), (0x1000, 0x1800)],
        zones=[(ZoneType.DMA, 0, MAX_DMA_PFN), (ZoneType.NORMAL, MAX_DMA_PFN, max_low),
               (ZoneType.HIGHMEM, max_low, pages), (ZoneType.MOVABLE, pages, pages)],
        page_offset=X86_32_PAGE_OFFSET, max_low_pfn=max_low, word_bits=32, nr_cpus=4, watermarks=True, section_size_bits=section_bits,
    )


PRESETS: Final[dict[str, Callable[..., Machine]]] = {"tiny": tiny, "tiny-wmark": tiny_wmark, "tiny-highmem": tiny_highmem, "x86_64": x86_64, "x86_32": x86_32}
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
    """A preset spec (see ``machine_preset``) or a path to a TOML or JSON machine file (``machine.machine_from_file``)."""
    text = str(spec)
    if text.endswith((".toml", ".json")) or "/" in text or Path(text).is_file():
        return machine_from_file(Path(text))
    return machine_preset(text)
