"""The machine file format (TOML or JSON): one field table that reads, writes and checks it.

``FIELDS`` lists every key of a machine file in the order ``write`` puts
them; ``read`` turns a parsed file into the values ``machine.build_machine``
takes, checking each key's presence, type and shape (errors name the key:
``zones[1].end_pfn: ...``), and leaves ``None`` where the machine supplies a
default (page_offset, max_low_pfn, section_size_bits). What a machine must
satisfy beyond its file's shape (RAM inside the address width, zones in
kernel order, ...) is ``machine.Machine``'s own check, made for presets too.

Neighbours: ``machine`` builds the Machine from these values (and writes
one back through ``write``); the presets are in ``presets``. Nothing here
imports either, so ``Machine.to_dict`` needs no import cycle.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Final

from .errors import InvalidMachine
from .gfp import ZoneType

#: (type, start_pfn, end_pfn, explicit (watermarks [min, low, high], lowmem_reserve) or None)
ZoneEntry = tuple[ZoneType, int, int, tuple[tuple[int, int, int], tuple[int, ...]] | None]


@dataclass(frozen=True)
class Field:
    """One key of a machine file: how it is read (raw file table -> value) and written (Machine attribute -> raw)."""

    key: str
    read: Callable[[dict[str, Any]], Any]
    write: Callable[[Any], Any] | None  # None: read only, not a Machine attribute
    doc: str


def _int_field(data: dict[str, Any], key: str, where: str = "", default: int | None = None) -> Any:
    """An integer (or a string such as "0x1000"); missing is an error unless there is a default."""
    if key not in data:
        if default is not None:
            return default
        raise InvalidMachine(f"{where}{key}: missing")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str):
            try:
                return int(value, 0)
            except ValueError:
                pass
        raise InvalidMachine(f"{where}{key}: expected an integer, got {value!r}")
    return value


def _str_field(data: dict[str, Any], key: str, where: str) -> str:
    if key not in data:
        raise InvalidMachine(f"{where}{key}: missing")
    value = data[key]
    if not isinstance(value, str):
        raise InvalidMachine(f"{where}{key}: expected str, got {value!r}")
    return value


def _int(key: str, default: int | None) -> Callable[[dict[str, Any]], Any]:
    return lambda data: _int_field(data, key, default=default)


def _optional_int(key: str) -> Callable[[dict[str, Any]], int | None]:
    """An integer, or None when absent: the machine then picks the value (``build_machine``)."""
    return lambda data: _int_field(data, key) if key in data else None


def _ranges(key: str, required: bool) -> Callable[[dict[str, Any]], list[tuple[int, int]]]:
    def read(data: dict[str, Any]) -> list[tuple[int, int]]:
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
    return read


def _zones(data: dict[str, Any]) -> list[ZoneEntry]:
    zones_raw = data.get("zones")
    if not isinstance(zones_raw, list) or not zones_raw:
        raise InvalidMachine("zones: missing (a list of tables with type, start_pfn, end_pfn)")
    return [_zone(i, z) for i, z in enumerate(zones_raw)]


def _zone(i: int, z: Any) -> ZoneEntry:
    where = f"zones[{i}]."
    if not isinstance(z, dict):
        raise InvalidMachine(f"zones[{i}]: expected a table with type, start_pfn, end_pfn")
    tname = _str_field(z, "type", where)
    try:
        ztype = ZoneType[tname.upper()]
    except KeyError:
        raise InvalidMachine(f"{where}type: {tname!r} is not a zone; use one of {', '.join(t.name for t in ZoneType)}") from None
    start, end = _int_field(z, "start_pfn", where), _int_field(z, "end_pfn", where)
    if "watermarks" not in z:
        return ztype, start, end, None
    wm = z["watermarks"]
    if not (isinstance(wm, list) and len(wm) == 3 and all(isinstance(v, int) for v in wm)):
        raise InvalidMachine(f"{where}watermarks: expected [min, low, high] page counts")
    reserve = z.get("lowmem_reserve", [0] * len(ZoneType))
    if not (isinstance(reserve, list) and all(isinstance(v, int) for v in reserve)):
        raise InvalidMachine(f"{where}lowmem_reserve: expected a list of page counts")
    return ztype, start, end, ((wm[0], wm[1], wm[2]), tuple(reserve))


def _watermark_mode(data: dict[str, Any]) -> str:
    mode = data.get("watermarks", "kernel")
    if mode not in ("kernel", "none"):
        raise InvalidMachine(f"watermarks: {mode!r} must be \"kernel\" (computed as mm/page_alloc.c does) or \"none\" (all zero)")
    return str(mode)


def _same(value: Any) -> Any:
    return value


def _write_ranges(ranges: Any) -> list[list[int]]:
    return [[r.start, r.end] for r in ranges]


def _write_zones(zones: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": z.zone_type.name,
            "start_pfn": z.start_pfn,
            "end_pfn": z.end_pfn,
            "watermarks": [z.watermark.min, z.watermark.low, z.watermark.high],
            "lowmem_reserve": list(z.lowmem_reserve),
        }
        for z in zones
    ]


FIELDS: Final[tuple[Field, ...]] = (
    Field("name", lambda data: str(data["name"]) if "name" in data else None, _same, "what reports call the machine; a file's name without its suffix when absent"),
    Field("page_shift", _int("page_shift", 12), _same, "log2(PAGE_SIZE); 12 when absent"),
    Field("phys_addr_bits", _int("phys_addr_bits", None), _same, "physical address width (required)"),
    Field("max_page_order", _int("max_page_order", 10), _same, "MAX_PAGE_ORDER; 10 when absent"),
    Field("word_bits", _int("word_bits", 64), _same, "32 or 64; 64 when absent"),
    Field("page_offset", _optional_int("page_offset"), _same, "PAGE_OFFSET; x86_64's when absent"),
    Field("max_low_pfn", _optional_int("max_low_pfn"), _same, "the lowmem/highmem boundary; the end of the lowmem zones when absent"),
    Field("nr_cpus", _int("nr_cpus", 1), _same, "CPUs; 1 when absent"),
    Field("section_size_bits", _optional_int("section_size_bits"), _same, "SECTION_SIZE_BITS; 27 (64-bit) or 26 (32-bit) when absent"),
    Field("vmalloc_start", _optional_int("vmalloc_start"), _same, "VMALLOC_START; the architecture's when absent (32-bit: high_memory + 8 MiB)"),
    Field("vmalloc_end", _optional_int("vmalloc_end"), _same, "one past the vmalloc area's last address; the architecture's when absent (32-bit: 0xff7fe000)"),
    Field("fixaddr_start", _optional_int("fixaddr_start"), _same, "FIXADDR_START, where 32-bit's virt_addr_valid() stops; 0xffe00000 on 32-bit when absent"),
    Field("ram", _ranges("ram", True), _write_ranges, "System RAM [start_pfn, end_pfn) ranges (required)"),
    Field("reserved", _ranges("reserved", False), _write_ranges, "memblock-reserved ranges inside RAM"),
    Field("zones", _zones, _write_zones, "tables of type, start_pfn, end_pfn, and optionally watermarks and lowmem_reserve (required)"),
    Field("watermarks", _watermark_mode, None, "\"kernel\" (computed, the default) or \"none\" (all zero), for zones without their own"),
)

#: The order ``read`` takes the keys in, which decides which of two mistakes a file reports first
#: (unchanged since the format began; a default read later may depend on a value read before).
_READ_ORDER: Final = ("page_shift", "zones", "ram", "reserved", "watermarks", "phys_addr_bits", "max_page_order", "page_offset",
                      "max_low_pfn", "word_bits", "nr_cpus", "section_size_bits", "name", "vmalloc_start", "vmalloc_end", "fixaddr_start")
_BY_KEY: Final = {f.key: f for f in FIELDS}


def read(data: Any) -> dict[str, Any]:
    """The values of a machine file, by key (None where absent and the machine picks); InvalidMachine names the bad key."""
    if not isinstance(data, dict):
        raise InvalidMachine("expected a table of machine fields at the top level")
    for key in data:
        if key not in _BY_KEY:
            raise InvalidMachine(f"{key}: unknown field; known fields are {', '.join(sorted(_BY_KEY))}")
    return {key: _BY_KEY[key].read(data) for key in _READ_ORDER}


def write(machine: object) -> dict[str, Any]:
    """A machine's file form (JSON-compatible), the keys in ``FIELDS`` order."""
    return {f.key: f.write(getattr(machine, f.key)) for f in FIELDS if f.write is not None}


def read_file(path: Path) -> Any:
    """The parsed contents of a .toml (else JSON) machine file; InvalidMachine for an unreadable or malformed one."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidMachine(f"machine file {path}: {e.strerror or e}") from None
    try:
        return tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidMachine(f"machine file {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
