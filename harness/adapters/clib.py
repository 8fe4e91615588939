"""``c:path/to/liballoc.so``: an allocator in C (or anything with a C ABI), called in process through ctypes.

The ABI is harness/c/kmemspec_iut.h. ``CLibrary`` loads and checks a
library once; calling it with (machine, env) creates an instance
(``kmemspec_create``) wrapped in ``CIut``, which has the Python protocol's
methods. Status codes map one to one onto ``refmodel.errors`` violations.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any, Final

from ...refmodel.errors import VIOLATION_BY_CODE, InvalidArgument, InvalidDefinition
from ...refmodel.machine import Machine
from ..ops import CAPABILITY_METHODS, Kind, Op, Returns, wire_ops
from ..protocol import Env, TransportFailure, validate_iut

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


#: The symbols every library exports, beside one per operation of its capabilities.
_BASE_SYMBOLS: Final[dict[str, tuple[Any, list[Any]]]] = {
    "kmemspec_abi_version": (_u32, []),
    "kmemspec_capabilities": (ctypes.c_char_p, []),
    "kmemspec_claims": (ctypes.c_char_p, []),
    "kmemspec_create": (_vp, [ctypes.POINTER(_Machine), ctypes.POINTER(_Env)]),
    "kmemspec_destroy": (None, [_vp]),
}

_ARG_CTYPES: Final = {Kind.GFP: _u32, Kind.ORDER: _u32, Kind.CONTEXT: _u32, Kind.NAME: ctypes.c_char_p}
_SIZE_T_LIMIT: Final = 1 << 64


def _ctypes_of(o: Op) -> tuple[Any, list[Any]]:
    """(restype, argtypes) of ``o``'s C function, as harness/c/kmemspec_iut.h declares it."""
    argtypes: list[Any] = [_vp]
    for a in o.args:
        if a.kind is Kind.BYTES:
            argtypes += [_vp, _u64]
        elif a.kind is Kind.SIZE and o.returns is Returns.BYTES:
            argtypes += [_vp, _u64]  # read_phys: the caller's buffer and its length
        else:
            argtypes.append(_ARG_CTYPES.get(a.kind, _u64))
    if o.returns is Returns.FREE_AREA:
        return _i64, argtypes + [ctypes.POINTER(_u64), ctypes.POINTER(_u32), _u64]
    if o.returns is Returns.SLAB_ROWS:
        return _i64, argtypes + [ctypes.POINTER(_SlabRow), _u64]
    if o.returns.nullable or o.returns is Returns.SIZE:
        argtypes.append(ctypes.POINTER(_u64))
    return _int, argtypes


def c_prototype_types(o: Op) -> tuple[str, list[str]]:
    """The C return type and parameter types of ``o``, as harness/c/kmemspec_iut.h must declare them."""
    params = ["void *"]
    for a in o.args:
        if a.kind is Kind.BYTES:
            params += ["const void *", "uint64_t"]
        elif a.kind is Kind.SIZE and o.returns is Returns.BYTES:
            params += ["void *", "uint64_t"]
        else:
            params.append(a.kind.c_type)
    if o.returns is Returns.FREE_AREA:
        return "int64_t", params + ["uint64_t *", "uint32_t *", "uint64_t"]
    if o.returns is Returns.SLAB_ROWS:
        return "int64_t", params + ["struct kmemspec_slab *", "uint64_t"]
    if o.returns.nullable or o.returns is Returns.SIZE:
        params.append("uint64_t *")
    return "int", params


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
        self.ops = [o for o in wire_ops().values() if o.capability in self.capabilities]
        for o in self.ops:
            self._bind(o.c_symbol, o.capability, _ctypes_of(o))
        declared = type("Declared", (), {"capabilities": self.capabilities, "claims": self.claims})()
        for methods in CAPABILITY_METHODS.values():
            for method in methods:
                setattr(declared, method, lambda *a: None)
        validate_iut(declared, label)

    def _bind(self, name: str, cap: str = "", types: tuple[Any, list[Any]] | None = None) -> None:
        try:
            fn = getattr(self.lib, name)
        except AttributeError:
            why = f"declares capability {cap!r} but" if cap else "is not a kmemspec implementation:"
            raise InvalidDefinition(f"{self.label}: {self.path} {why} does not export {name}() (harness/c/kmemspec_iut.h)") from None
        fn.restype, fn.argtypes = types if types is not None else _BASE_SYMBOLS[name]
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
        self._bind_ops()

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

    # -- the operations, one method each, derived from the operation table ------------------

    def _bind_ops(self) -> None:
        for o in self._lib.ops:
            setattr(self, o.name, functools.partial(_CALLS[o.returns], self, o, self._fn[o.c_symbol]))

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

    def _rows(self, fn: str, what: str, call: Any, make: Any) -> list[Any]:
        """Call an introspection function that fills caller-provided arrays, growing them once if it asks for more."""
        cap = 256
        for _ in range(2):  # the second call has room for every row the first one counted
            n, rows = call(cap)
            if n < 0 or n > self._max_blocks:
                raise TransportFailure("IUT-RETURN-TYPE", f"{fn}() returned {n}; it returns the number of {what} (0..{self._max_blocks} on this machine)")
            if n <= cap:
                return make(rows, n)
            cap = n
        raise TransportFailure("IUT-RETURN-TYPE", f"{fn}() needed room for {cap} {what}, then asked for more")

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


def _c_args(o: Op, args: tuple[Any, ...]) -> list[Any] | None:
    """The C arguments of a call; None when a size_t argument cannot carry its value (the request overflows all the more)."""
    out: list[Any] = []
    for a, v in zip(o.args, args):
        if a.kind is Kind.NAME:
            out.append(v.encode())
        elif a.kind is Kind.BYTES:
            data = bytes(v)
            out += [ctypes.create_string_buffer(data, len(data)), len(data)]
        elif a.kind is Kind.SIZE and v >= _SIZE_T_LIMIT:
            return None
        else:
            out.append(v)
    return out


def _call_status(iut: CIut, o: Op, fn: Any, *args: Any) -> None:
    c_args = _c_args(o, args)
    if c_args is None:
        raise InvalidArgument(f"{o.name}{args!r}: a size_t argument cannot carry its value")
    iut._status(o.c_symbol, fn(iut._handle, *c_args))


def _call_out(iut: CIut, o: Op, fn: Any, *args: Any) -> int | None:
    c_args = _c_args(o, args)
    if c_args is None:
        return None  # kmalloc_array(n, size) whose size_t arguments cannot carry n or size: NULL
    out = _u64()
    ok = iut._status(o.c_symbol, fn(iut._handle, *c_args, ctypes.byref(out)), may_fail=o.returns.nullable)
    return out.value if ok else None


def _call_bytes(iut: CIut, o: Op, fn: Any, *args: Any) -> bytes:
    *head, length = args  # read_phys(phys_addr, length): the bytes into a buffer of that length
    buf = ctypes.create_string_buffer(length)
    iut._status(o.c_symbol, fn(iut._handle, *head, buf, length))
    return buf.raw


def _call_free_area(iut: CIut, o: Op, fn: Any) -> list[tuple[int, int]]:
    def call(cap: int) -> tuple[int, Any]:
        pfns, orders = (_u64 * cap)(), (_u32 * cap)()
        return fn(iut._handle, pfns, orders, cap), (pfns, orders)
    return iut._rows(o.c_symbol, "free blocks", call, lambda rows, n: [(rows[0][i], rows[1][i]) for i in range(n)])


def _call_slabs(iut: CIut, o: Op, fn: Any) -> list[tuple[int, int, int, int, int]]:
    def call(cap: int) -> tuple[int, Any]:
        rows = (_SlabRow * cap)()
        return fn(iut._handle, rows, cap), rows
    return iut._rows(o.c_symbol, "slab blocks", call, lambda rows, n: [(r.cache, r.pfn, r.order, r.inuse, r.total) for r in rows[:n]])


#: How each kind of answer comes back through the C ABI.
_CALLS: Final[dict[Returns, Any]] = {
    Returns.NOTHING: _call_status, Returns.PFN: _call_out, Returns.ADDR: _call_out, Returns.OBJECT: _call_out,
    Returns.CACHE: _call_out, Returns.SIZE: _call_out, Returns.BYTES: _call_bytes, Returns.FREE_AREA: _call_free_area,
    Returns.SLAB_ROWS: _call_slabs,
}
