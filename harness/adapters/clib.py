"""``c:path/to/liballoc.so``: an allocator in C (or anything with a C ABI), called in process through ctypes.

The ABI is harness/c/kmemspec_iut.h. ``CLibrary`` loads and checks a
library once; calling it with (machine, env) creates an instance
(``kmemspec_create``) wrapped in ``CIut``, which has the Python protocol's
methods. Status codes map one to one onto ``refmodel.errors`` violations.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Final

from ...refmodel.errors import VIOLATION_BY_CODE, InvalidDefinition
from ...refmodel.machine import Machine
from ..protocol import CAPABILITY_METHODS, Env, TransportFailure, validate_iut

ABI_VERSION: Final = 1
KMEMSPEC_OK: Final = 0
KMEMSPEC_NOMEM: Final = -1
NR_ZONE_TYPES: Final = 5

_u32, _u64, _i64, _int, _vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p


class _Range(ctypes.Structure):
    _fields_ = [("start_pfn", _u64), ("end_pfn", _u64)]


class _Zone(ctypes.Structure):
    _fields_ = [
        ("zone_type", _u32), ("reserved0", _u32), ("start_pfn", _u64), ("end_pfn", _u64),
        ("watermark_min", _u64), ("watermark_low", _u64), ("watermark_high", _u64),
        ("lowmem_reserve", _u64 * NR_ZONE_TYPES),
    ]


class _Machine(ctypes.Structure):
    _fields_ = [
        ("abi_version", _u32), ("page_shift", _u32), ("max_page_order", _u32), ("nr_zones", _u32),
        ("zones", ctypes.POINTER(_Zone)), ("page_offset", _u64), ("max_low_pfn", _u64),
        ("nr_free_ranges", _u32), ("reserved1", _u32), ("free_ranges", ctypes.POINTER(_Range)),
        ("json", ctypes.c_char_p), ("word_bits", _u32), ("section_size_bits", _u32), ("phys_addr_bits", _u32),
        ("nr_ram", _u32), ("ram", ctypes.POINTER(_Range)), ("nr_reserved", _u32), ("reserved2", _u32),
        ("reserved", ctypes.POINTER(_Range)),
    ]


class _SlabRow(ctypes.Structure):
    _fields_ = [("cache", _u64), ("pfn", _u64), ("order", _u32), ("inuse", _u32), ("total", _u32), ("reserved", _u32)]


_PREEMPT_COUNT = ctypes.CFUNCTYPE(_u32, _vp)
_MIGHT_SLEEP = ctypes.CFUNCTYPE(None, _vp)
_SLEEP = ctypes.CFUNCTYPE(None, _vp)
_REPORT = ctypes.CFUNCTYPE(None, _vp, _int)


class _Env(ctypes.Structure):
    _fields_ = [("opaque", _vp), ("preempt_count", _PREEMPT_COUNT), ("might_sleep", _MIGHT_SLEEP),
                ("sleep", _SLEEP), ("report", _REPORT)]


#: exported symbol -> (restype, argtypes); the capability that needs it ("" = always).
_SYMBOLS: Final[dict[str, tuple[str, Any, list[Any]]]] = {
    "kmemspec_abi_version": ("", _u32, []),
    "kmemspec_capabilities": ("", ctypes.c_char_p, []),
    "kmemspec_claims": ("", ctypes.c_char_p, []),
    "kmemspec_create": ("", _vp, [ctypes.POINTER(_Machine), ctypes.POINTER(_Env)]),
    "kmemspec_destroy": ("", None, [_vp]),
    "kmemspec_alloc_pages": ("pages", _int, [_vp, _u32, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_free_pages": ("pages", _int, [_vp, _u64, _u32]),
    "kmemspec_get_free_pages": ("get_free_pages", _int, [_vp, _u32, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_free_pages_addr": ("get_free_pages", _int, [_vp, _u64, _u32]),
    "kmemspec_read_phys": ("memory", _int, [_vp, _u64, _vp, _u64]),
    "kmemspec_write_phys": ("memory", _int, [_vp, _u64, _vp, _u64]),
    "kmemspec_free_area": ("free_area", _i64, [_vp, ctypes.POINTER(_u64), ctypes.POINTER(_u32), _u64]),
    "kmemspec_kmalloc": ("kmalloc", _int, [_vp, _u64, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_kzalloc": ("kmalloc", _int, [_vp, _u64, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_kmalloc_array": ("kmalloc", _int, [_vp, _u64, _u64, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_krealloc": ("kmalloc", _int, [_vp, _u64, _u64, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_ksize": ("kmalloc", _int, [_vp, _u64, ctypes.POINTER(_u64)]),
    "kmemspec_kfree": ("kmalloc", _int, [_vp, _u64]),
    "kmemspec_kmem_cache_create": ("slab", _int, [_vp, ctypes.c_char_p, _u64, _u64, _u64, ctypes.POINTER(_u64)]),
    "kmemspec_kmem_cache_alloc": ("slab", _int, [_vp, _u64, _u32, ctypes.POINTER(_u64)]),
    "kmemspec_kmem_cache_free": ("slab", _int, [_vp, _u64, _u64]),
    "kmemspec_kmem_cache_destroy": ("slab", _int, [_vp, _u64]),
    "kmemspec_kmem_cache_shrink": ("slab", _int, [_vp, _u64]),
    "kmemspec_slabs": ("slab_info", _i64, [_vp, ctypes.POINTER(_SlabRow), _u64]),
    "kmemspec_kmem_cache_validate": ("slab_debug", _int, [_vp, _u64]),
}


class CLibrary:
    """A loaded, checked library; ``make(machine, env)`` for the suite."""

    def __init__(self, path: str, label: str) -> None:
        self.path, self.label = path, label
        file = Path(path)
        if not file.exists():
            raise InvalidDefinition(f"{label}: {path} does not exist; build it with cc -shared -fPIC -I\"$(kmemspec include-dir)\" ...")
        # A name without a slash would make dlopen search the library path, not this file.
        try:
            self.lib = ctypes.CDLL(str(file.resolve()))
        except OSError as e:
            raise InvalidDefinition(f"{label}: cannot load {path}: {e}") from None
        self.functions: dict[str, Any] = {}
        for name in ("kmemspec_abi_version", "kmemspec_capabilities", "kmemspec_claims", "kmemspec_create", "kmemspec_destroy"):
            self._bind(name)
        version = self.functions["kmemspec_abi_version"]()
        if version != ABI_VERSION:
            raise InvalidDefinition(f"{label}: {path} implements kmemspec ABI version {version}; this kmemspec speaks version {ABI_VERSION} (harness/c/kmemspec_iut.h)")
        self.capabilities = self._words("kmemspec_capabilities")
        self.claims = self._words("kmemspec_claims")
        for name, (cap, _, _) in _SYMBOLS.items():
            if cap and cap in self.capabilities:
                self._bind(name, cap)
        declared = type("Declared", (), {"capabilities": self.capabilities, "claims": self.claims})()
        for methods in CAPABILITY_METHODS.values():
            for method in methods:
                setattr(declared, method, lambda *a: None)
        validate_iut(declared, label)

    def _bind(self, name: str, cap: str = "") -> None:
        try:
            fn = getattr(self.lib, name)
        except AttributeError:
            why = f"declares capability {cap!r} but" if cap else "is not a kmemspec implementation:"
            raise InvalidDefinition(f"{self.label}: {self.path} {why} does not export {name}() (harness/c/kmemspec_iut.h)") from None
        _, fn.restype, fn.argtypes = _SYMBOLS[name]
        self.functions[name] = fn

    def _words(self, name: str) -> frozenset[str]:
        raw = self.functions[name]()
        if raw is None and name == "kmemspec_capabilities":
            raise InvalidDefinition(f"{self.label}: kmemspec_capabilities() returned NULL; return a string such as \"pages memory\"")
        return frozenset((raw or b"").decode("utf-8", "replace").replace(",", " ").split())

    def __call__(self, machine: Machine, env: Env) -> CIut:
        return CIut(self, machine, env)


def _ranges(pairs: list[tuple[int, int]]) -> tuple[Any, list[tuple[int, int]]]:
    """A C array of kmemspec_range (never zero-length, so the pointer is valid) and its entries."""
    return (_Range * max(1, len(pairs)))(*[_Range(a, b) for a, b in pairs]), pairs


class CIut:
    """One instance of a C allocator, with the Python protocol's methods."""

    def __init__(self, lib: CLibrary, machine: Machine, env: Env) -> None:
        self._lib, self._fn, self.env = lib, lib.functions, env
        self.capabilities, self.claims = lib.capabilities, lib.claims
        self._pending: TransportFailure | None = None
        self._max_blocks = machine.max_pfn  # no machine has more free blocks than pages
        self._keep = self._machine_struct(machine)
        self._cenv = _Env(None, _PREEMPT_COUNT(lambda _: int(self.env.context)), _MIGHT_SLEEP(lambda _: self.env.might_sleep()),
                          _SLEEP(lambda _: self.env.sleep()), _REPORT(lambda _, code: self._report(code)))
        self._handle = self._fn["kmemspec_create"](ctypes.byref(self._keep[0]), ctypes.byref(self._cenv))
        if not self._handle:
            raise InvalidDefinition(f"{lib.label}: kmemspec_create() returned NULL for machine {machine.name}")

    @staticmethod
    def _machine_struct(machine: Machine) -> tuple[Any, ...]:
        import json

        from ..wire import machine_message

        zones = (_Zone * max(1, len(machine.zones)))()
        for i, z in enumerate(machine.zones):
            reserve = (list(z.lowmem_reserve) + [0] * NR_ZONE_TYPES)[:NR_ZONE_TYPES]
            zones[i] = _Zone(int(z.zone_type), 0, z.start_pfn, z.end_pfn, z.watermark.min, z.watermark.low, z.watermark.high,
                             (_u64 * NR_ZONE_TYPES)(*reserve))
        free = _ranges([(r.start, r.end) for z in machine.populated_zones for r in machine.zone_free_ranges(z)])
        ram = _ranges([(r.start, r.end) for r in machine.ram])
        reserved = _ranges([(r.start, r.end) for r in machine.reserved])
        text = json.dumps(machine_message(machine)).encode()
        m = _Machine(ABI_VERSION, machine.page_shift, machine.max_page_order, len(machine.zones), zones,
                     machine.page_offset, machine.max_low_pfn, len(free[1]), 0, free[0], text,
                     machine.word_bits, machine.section_size_bits, machine.phys_addr_bits,
                     len(ram[1]), ram[0], len(reserved[1]), 0, reserved[0])
        return m, zones, free, ram, reserved, text

    def _report(self, code: int) -> None:
        # Runs inside a ctypes callback, where an exception would be printed and lost.
        cls = VIOLATION_BY_CODE.get(code)
        if cls is None:
            self._pending = TransportFailure("IUT-RETURN-TYPE", f"env->report() was called with code {code}, which is no KMEMSPEC_E_* violation")
        else:
            self.env.report(cls(f"reported through env->report({code})"))

    def _status(self, fn: str, status: int, *, may_fail: bool = False) -> bool:
        """True for OK, False for NOMEM (allocations only); raises the violation a code names."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        if status == KMEMSPEC_OK:
            return True
        if status == KMEMSPEC_NOMEM and may_fail:
            return False
        cls = VIOLATION_BY_CODE.get(status)
        if cls is None:
            allowed = "KMEMSPEC_OK, KMEMSPEC_NOMEM nor" if may_fail else "KMEMSPEC_OK nor"
            raise TransportFailure("IUT-RETURN-TYPE", f"{fn}() returned status {status}, which is neither {allowed} a KMEMSPEC_E_* violation code")
        raise cls(f"{fn}() returned {status} ({cls.__name__})")

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        out = _u64()
        ok = self._status("kmemspec_alloc_pages", self._fn["kmemspec_alloc_pages"](self._handle, gfp, order, ctypes.byref(out)), may_fail=True)
        return out.value if ok else None

    def free_pages(self, pfn: int, order: int) -> None:
        self._status("kmemspec_free_pages", self._fn["kmemspec_free_pages"](self._handle, pfn, order))

    def get_free_pages(self, gfp: int, order: int) -> int:
        out = _u64()
        ok = self._status("kmemspec_get_free_pages", self._fn["kmemspec_get_free_pages"](self._handle, gfp, order, ctypes.byref(out)), may_fail=True)
        return out.value if ok else 0

    def free_pages_addr(self, addr: int, order: int) -> None:
        self._status("kmemspec_free_pages_addr", self._fn["kmemspec_free_pages_addr"](self._handle, addr, order))

    def read_phys(self, phys_addr: int, length: int) -> bytes:
        buf = ctypes.create_string_buffer(length)
        self._status("kmemspec_read_phys", self._fn["kmemspec_read_phys"](self._handle, phys_addr, buf, length))
        return buf.raw

    def write_phys(self, phys_addr: int, data: bytes) -> None:
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        self._status("kmemspec_write_phys", self._fn["kmemspec_write_phys"](self._handle, phys_addr, buf, len(data)))

    def free_area(self) -> list[tuple[int, int]]:
        cap = 256
        for _ in range(2):  # the second call has room for every block the first one counted
            pfns, orders = (_u64 * cap)(), (_u32 * cap)()
            n = self._fn["kmemspec_free_area"](self._handle, pfns, orders, cap)
            if n < 0 or n > self._max_blocks:
                raise TransportFailure("IUT-RETURN-TYPE", f"kmemspec_free_area() returned {n}; it returns the number of free blocks "
                                                          f"(0..{self._max_blocks} on this machine)")
            if n <= cap:
                return [(pfns[i], orders[i]) for i in range(n)]
            cap = n
        raise TransportFailure("IUT-RETURN-TYPE", f"kmemspec_free_area() needed room for {cap} blocks, then asked for more")

    # -- kmalloc and the slab layer ---------------------------------------------------

    def _out(self, fn: str, *args: Any, may_fail: bool = True) -> int | None:
        """Call ``fn`` with an out-parameter appended; None for KMEMSPEC_NOMEM."""
        out = _u64()
        ok = self._status(fn, self._fn[fn](self._handle, *args, ctypes.byref(out)), may_fail=may_fail)
        return out.value if ok else None

    def kmalloc(self, size: int, gfp: int) -> int | None:
        return self._out("kmemspec_kmalloc", size, gfp)

    def kzalloc(self, size: int, gfp: int) -> int | None:
        return self._out("kmemspec_kzalloc", size, gfp)

    def kmalloc_array(self, n: int, size: int, gfp: int) -> int | None:
        if n >> 64 or size >> 64:
            return None  # size_t arguments cannot carry it: the product overflows all the more
        return self._out("kmemspec_kmalloc_array", n, size, gfp)

    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        return self._out("kmemspec_krealloc", addr, size, gfp)

    def ksize(self, addr: int) -> int | None:
        return self._out("kmemspec_ksize", addr, may_fail=False)

    def kfree(self, addr: int) -> None:
        self._status("kmemspec_kfree", self._fn["kmemspec_kfree"](self._handle, addr))

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> int | None:
        return self._out("kmemspec_kmem_cache_create", name.encode(), size, align, flags)

    def kmem_cache_alloc(self, cache: int, gfp: int) -> int | None:
        return self._out("kmemspec_kmem_cache_alloc", cache, gfp)

    def kmem_cache_free(self, cache: int, addr: int) -> None:
        self._status("kmemspec_kmem_cache_free", self._fn["kmemspec_kmem_cache_free"](self._handle, cache, addr))

    def kmem_cache_destroy(self, cache: int) -> None:
        self._status("kmemspec_kmem_cache_destroy", self._fn["kmemspec_kmem_cache_destroy"](self._handle, cache))

    def kmem_cache_shrink(self, cache: int) -> None:
        self._status("kmemspec_kmem_cache_shrink", self._fn["kmemspec_kmem_cache_shrink"](self._handle, cache))

    def kmem_cache_validate(self, cache: int) -> None:
        self._status("kmemspec_kmem_cache_validate", self._fn["kmemspec_kmem_cache_validate"](self._handle, cache))

    def slabs(self) -> list[tuple[int, int, int, int, int]]:
        cap = 256
        for _ in range(2):
            rows = (_SlabRow * cap)()
            n = self._fn["kmemspec_slabs"](self._handle, rows, cap)
            if n < 0 or n > self._max_blocks:
                raise TransportFailure("IUT-RETURN-TYPE", f"kmemspec_slabs() returned {n}; it returns the number of slab blocks (0..{self._max_blocks})")
            if n <= cap:
                return [(r.cache, r.pfn, r.order, r.inuse, r.total) for r in rows[:n]]
            cap = n
        raise TransportFailure("IUT-RETURN-TYPE", f"kmemspec_slabs() needed room for {cap} blocks, then asked for more")

    def close(self) -> None:
        """kmemspec_destroy(); the lockstep checker calls it when the example ends."""
        handle, self._handle = self._handle, None
        if handle:
            self._fn["kmemspec_destroy"](handle)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
