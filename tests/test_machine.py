"""Machine descriptions: presets, the bits-to-memory arithmetic, file loading and its errors."""

import json
import subprocess
import sys

import pytest

from kmemspec.refmodel.errors import InvalidMachine
from kmemspec.refmodel.gfp import ZoneType
from kmemspec.refmodel.machine import PfnRange, machine_from_dict
from kmemspec.refmodel.presets import load_machine
from kmemspec.refmodel.presets import PRESETS


@pytest.mark.parametrize("spec", [*PRESETS, "x86_64:16G", "x86_64:2G", "x86_32:8G", "x86_32:512M"])
def test_presets_are_valid_and_round_trip(spec, tmp_path):
    m = load_machine(spec)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(m.to_dict()))
    assert load_machine(str(path)) == m


def test_tiny_zone_boundaries_are_not_max_order_aligned():
    m = load_machine("tiny")
    block = 1 << m.max_page_order
    assert any(z.start_pfn % block for z in m.populated_zones[1:])
    assert len(m.ram) > 1  # a hole
    assert all(z.watermark.low == 0 for z in m.zones)


def test_x86_64_zone_limits():
    m = load_machine("x86_64:16G")
    assert m.zone(ZoneType.DMA).end_pfn == 4096
    assert m.zone(ZoneType.DMA32).end_pfn == 0x100000
    assert m.zone(ZoneType.NORMAL).end_pfn == m.max_pfn
    assert m.usable_range_of(0x10) is None  # low 1 MiB reserved


def test_x86_32_highmem_boundary():
    m = load_machine("x86_32")
    assert m.zone(ZoneType.HIGHMEM).start_pfn == m.max_low_pfn == 0x377FE
    assert m.pfn_to_virt(0) == 0xC0000000
    # __virt_addr_valid does not compare with high_memory: past lowmem, a highmem PFN (arch/x86/mm/physaddr.c).
    assert m.virt_to_pfn(m.pfn_to_virt(m.max_low_pfn)) == m.max_low_pfn
    assert m.virt_to_pfn(m.page_offset - 4096) is None
    assert not m.is_lowmem(m.max_low_pfn)


def test_address_conversions_are_pa_and_va():
    m = load_machine("x86_32")
    # arch/x86/include/asm/page.h __pa/__va on the direct map; include/linux/pfn.h PFN_PHYS/PHYS_PFN
    assert m.virt_to_phys(m.pfn_to_virt(5) + 7) == m.pfn_to_phys(5) + 7 == 5 * 4096 + 7
    assert m.phys_to_virt(m.virt_to_phys(0xC0123456)) == 0xC0123456
    assert m.phys_to_pfn(m.pfn_to_phys(0x1234) + 4095) == 0x1234


def test_pfn_valid_is_per_memory_section():
    m = load_machine("x86_64:16G")
    assert m.pfn_valid(0xA0)  # the legacy hole below 1 MiB has struct pages
    assert not m.pfn_valid(0xD0000)  # the PCI hole between 3 and 4 GiB has none
    assert not m.pfn_valid(m.max_pfn + (1 << 15))


def test_ram_must_fit_the_physical_address_width():
    d = load_machine("tiny").to_dict()
    d["phys_addr_bits"] = 20  # 2^(20-12) = 256 PFNs, RAM ends at 384
    with pytest.raises(InvalidMachine, match=r"ram: RAM ends at pfn 0x180 but 20 physical address bits reach only 0x100"):
        machine_from_dict(d)


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["zones"][1].update(start_pfn=50), "zones[1]"),
    (lambda d: d["zones"].reverse(), "zones[1]"),
    (lambda d: d["zones"][0].update(type="DMA64"), "zones[0].type"),
    (lambda d: d["zones"][2].update(end_pfn=999), "zones[2]"),
    (lambda d: d.update(ram=[[0, 10], [5, 20]]), "ram[1]"),
    (lambda d: d.update(page_shift="big"), "page_shift"),
    (lambda d: d.update(bogus=1), "bogus"),
    (lambda d: d["zones"][0].update(watermarks=[5, 2, 1]), "zones[0] (DMA).watermarks"),
    (lambda d: d.update(reserved=[[140, 180]]), "reserved[0]"),
])
def test_malformed_machines_name_the_field(mutate, field):
    d = load_machine("tiny").to_dict()
    mutate(d)
    with pytest.raises(InvalidMachine) as e:
        machine_from_dict(d)
    assert str(e.value).startswith(field), str(e.value)


def test_cli_malformed_machine_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('phys_addr_bits = 32\nram = [[0, 100]]\n[[zones]]\ntype = "NORMAL"\nstart_pfn = 0\nend_pfn = 200\n')
    p = subprocess.run([sys.executable, "-m", "kmemspec.cli", "machine", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "zones[0] (Normal): ends at pfn 0xc8" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_toml_machine_file_with_kernel_watermarks(tmp_path):
    f = tmp_path / "box.toml"
    f.write_text('phys_addr_bits = 32\nmax_page_order = 10\nram = [[0, 65536]]\n'
                 '[[zones]]\ntype = "DMA"\nstart_pfn = 0\nend_pfn = 4096\n'
                 '[[zones]]\ntype = "NORMAL"\nstart_pfn = 4096\nend_pfn = 65536\n')
    m = load_machine(str(f))
    assert m.name == "box"
    assert m.zone(ZoneType.NORMAL).watermark.min > 0
    assert m.zone(ZoneType.DMA).lowmem_reserve[ZoneType.NORMAL] == (65536 - 4096) // 256


def test_abutting_ram_ranges_are_one_range_as_memblock_merges_them():
    m = machine_from_dict({**load_machine("tiny").to_dict(), "ram": [[0, 150], [150, 384]]})
    dma32 = next(z for z in m.zones if z.name == "DMA32")
    assert list(m.zone_free_ranges(dma32)) == [PfnRange(dma32.start_pfn, dma32.end_pfn)]
