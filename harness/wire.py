"""The JSON lines protocol (version 2): messages, their schema, and reply decoding.

One request per line from the suite, one reply per line from the
implementation (docs/protocol.md, docs/protocol.schema.json). A request is
``{"op": NAME, "args": {...}, "context": N}``; the operations and their
arguments are the registry's (``harness.ops``), so a new subsystem's
operations travel without a change here. A peer that answers ``hello`` with
protocol 1 gets protocol 1's flat requests (``{"op": NAME, ARG: VALUE, ...}``);
the server accepts both. This module is shared by the client
(``adapters.process``) and the server (``serve``); ``python -m
kmemspec.harness.wire`` prints the schema (docs/protocol.schema.json).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Final, Mapping

from ..refmodel.errors import VIOLATION_BY_NAME, VIOLATIONS, Violation
from ..refmodel.machine import Machine
from .ops import Kind, Op, Returns, capabilities, wire_ops

PROTOCOL_VERSION: Final = 2
PROTOCOLS: Final = (1, 2)  # the versions this kmemspec speaks; 1 has flat requests
MAX_LINE: Final = 16 << 20  # a reply longer than this is a flood (IUT-WIRE-FORMAT)
MAX_COUNT: Final = 1000  # might_sleep / slept counts in one reply: more is garbage, not diligence
CONTROL_OPS: Final = ("hello", "init", "bye")  # the protocol's own messages, beside the operations


class _WireOps(Mapping[str, Op]):
    """The operations of the protocol, by name: a live view of the registry (``harness.ops.wire_ops``)."""

    def __getitem__(self, name: str) -> Op:
        return wire_ops()[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(wire_ops())

    def __len__(self) -> int:
        return len(wire_ops())


WIRE_OPS: Final[Mapping[str, Op]] = _WireOps()


def request(o: Op, args: tuple[Any, ...], context: int, version: int = PROTOCOL_VERSION) -> dict[str, Any]:
    """The request line for ``o(*args)`` in ``context``, in protocol ``version``."""
    named = {a.name: (encode_bytes(v) if a.kind is Kind.BYTES else v) for a, v in zip(o.args, args)}
    if version == 1:
        return {"op": o.name, **named, "context": context}
    return {"op": o.name, "args": named, "context": context}


def request_args(req: Mapping[str, Any]) -> dict[str, Any]:
    """A request's arguments, from protocol 2's ``args`` object or protocol 1's flat fields."""
    args = req.get("args")
    if isinstance(args, dict):
        return args
    return {k: v for k, v in req.items() if k not in ("op", "context")}


def decode_result(o: Op, result: Any) -> Any:
    """A reply's result as the Python protocol has it (bytes for read_phys); WireError when it cannot be."""
    if o.returns is Returns.BYTES:
        return decode_bytes(result)
    return result


def encode_result(o: Op, result: Any) -> Any:
    """A Python implementation's result as JSON carries it."""
    if o.returns is Returns.BYTES and isinstance(result, (bytes, bytearray)):
        return encode_bytes(result)
    if o.returns in (Returns.FREE_AREA, Returns.SLAB_ROWS) and result is not None:
        return [list(row) for row in result]
    return result


class WireError(ValueError):
    """A reply that is not of the protocol's shape; the message says what is wrong."""


def machine_message(machine: Machine) -> dict[str, Any]:
    """The machine file format plus ``free_ranges``: the RAM the buddy allocator owns at boot."""
    doc = machine.to_dict()
    doc["free_ranges"] = [[r.start, r.end] for z in machine.populated_zones for r in machine.zone_free_ranges(z)]
    return doc


def encode_bytes(data: bytes) -> str:
    return bytes(data).hex()


def decode_bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise WireError(f"expected bytes as a hex string, got {type(text).__name__}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise WireError(f"expected bytes as a hex string, got {text[:40]!r}") from None


@dataclass
class Reply:
    """A decoded reply: the result, or the violation reported, and what the call did to its env."""

    result: Any = None
    violation: Violation | None = None
    crash: str | None = None
    might_sleep: int = 0
    slept: int = 0
    reports: tuple[Violation, ...] = ()


def decode_reply(obj: Any) -> Reply:
    """Check a parsed reply line against the protocol; raise WireError naming the first problem."""
    if not isinstance(obj, dict):
        raise WireError(f"a reply must be a JSON object, got {type(obj).__name__}")
    reply = Reply(result=obj.get("result"))
    if "crash" in obj:
        reply.crash = str(obj["crash"])
    if "error" in obj:
        reply.violation = _violation(obj["error"], obj.get("message", ""))
    elif "result" not in obj and reply.crash is None:
        raise WireError("a reply has \"result\", \"error\" or \"crash\"; this one has none of them")
    reply.might_sleep = _count(obj, "might_sleep")
    reply.slept = _count(obj, "slept")
    reports = obj.get("reports", [])
    if not isinstance(reports, list) or len(reports) > MAX_COUNT:
        raise WireError(f"\"reports\" must be a list of at most {MAX_COUNT} violation names, got {type(reports).__name__}")
    reply.reports = tuple(_violation(name, "reported by the implementation") for name in reports)
    return reply


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise WireError(f"{key!r} must be a count (an int from 0 to {MAX_COUNT}), got {value!r}")
    return value


def _violation(name: Any, message: Any) -> Violation:
    cls = VIOLATION_BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WireError(f"unknown violation {name!r}; the protocol's are {', '.join(sorted(VIOLATION_BY_NAME))}")
    return cls(str(message))


# -- the schema --------------------------------------------------------------------

_UINT: Final = {"$ref": "#/$defs/uint"}
_ARG_SCHEMA: Final[dict[Kind, dict[str, Any]]] = {
    Kind.GFP: {"$ref": "#/$defs/gfp"}, Kind.ORDER: {"type": "integer"}, Kind.PFN: {"type": "integer"}, Kind.ADDR: _UINT,
    Kind.OBJECT: _UINT, Kind.PHYS: _UINT, Kind.SIZE: _UINT, Kind.CACHE: _UINT, Kind.SLAB_FLAGS: _UINT,
    Kind.NAME: {"type": "string"}, Kind.BYTES: {"$ref": "#/$defs/hex"}, Kind.CONTEXT: {"$ref": "#/$defs/context"},
}
_RESULT_SCHEMA: Final[dict[Returns, dict[str, Any]]] = {
    Returns.NOTHING: {"type": "null"}, Returns.PFN: {"type": ["integer", "null"]}, Returns.ADDR: {"type": ["integer", "null"]},
    Returns.OBJECT: {"type": ["integer", "null"]}, Returns.CACHE: {"type": ["integer", "null"]}, Returns.SIZE: {"type": "integer"},
    Returns.BYTES: {"$ref": "#/$defs/hex"},
    Returns.FREE_AREA: {"type": "array", "items": {"$ref": "#/$defs/free_row"},
                        "description": "[[pfn, order], ...]; a row [pfn, order, count] is count consecutive blocks of that order from pfn"},
    Returns.SLAB_ROWS: {"type": "array", "description": "[[cache, pfn, order, inuse, total], ...]",
                        "items": {"type": "array", "items": _UINT, "minItems": 5, "maxItems": 5}},
}


def _op_schema(o: Op) -> dict[str, Any]:
    return {
        "type": "object", "required": ["op", "args", "context"],
        "description": o.doc or o.name,
        "properties": {
            "op": {"const": o.name},
            "args": {"type": "object", "required": list(o.arg_names), "additionalProperties": False,
                     "properties": {a.name: _ARG_SCHEMA[a.kind] for a in o.args}},
            "context": {"$ref": "#/$defs/context"},
        },
        "x-result": _RESULT_SCHEMA[o.returns],
    }


def protocol_schema() -> dict[str, Any]:
    """docs/protocol.schema.json, derived from the operation table (a test keeps the file equal to it)."""
    events = {"might_sleep": {"$ref": "#/$defs/events/might_sleep"}, "slept": {"$ref": "#/$defs/events/slept"},
              "reports": {"$ref": "#/$defs/events/reports"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"kmemspec-protocol/{PROTOCOL_VERSION}",
        "title": f"kmemspec JSON lines protocol, version {PROTOCOL_VERSION}",
        "description": "One JSON object per line. The suite writes a request; the implementation writes exactly one reply (none to bye). "
                       "docs/protocol.md explains each message. Generated by `python -m kmemspec.harness.wire` from the operation table; "
                       "each operation's x-result gives the shape of its reply's result. A peer that answers hello with protocol 1 "
                       "gets protocol 1's requests: the same fields, with the arguments beside op instead of inside args.",
        "$defs": {
            "uint": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615,
                     "description": "an unsigned 64-bit integer: addresses (x86_64's PAGE_OFFSET is above 2^63) need all 64 bits, "
                                    "beyond JavaScript's 2^53 exact numbers; parse with a 64-bit or big-integer JSON reader"},
            "gfp": {"description": "a GFP mask (include/linux/gfp_types.h bits; kmemspec_iut.h)", "$ref": "#/$defs/uint"},
            "context": {"description": "the caller's preempt_count: 0 process, 1 atomic, 0x100 softirq, 0x10000 hardirq", "$ref": "#/$defs/uint"},
            "hex": {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$"},
            "violation": {"enum": [v.__name__ for v in VIOLATIONS]},
            "range": {"type": "array", "prefixItems": [_UINT, _UINT], "items": False, "minItems": 2},
            "free_row": {"type": "array", "prefixItems": [_UINT, _UINT, _UINT], "items": False, "minItems": 2},
            "request": {"oneOf": [
                {"type": "object", "required": ["op", "protocol"],
                 "properties": {"op": {"const": "hello"}, "protocol": {"enum": list(PROTOCOLS)}}},
                {"type": "object", "required": ["op", "machine"],
                 "properties": {"op": {"const": "init"}, "machine": {
                     "type": "object", "description": "the machine file format (kmemspec machine NAME --json) plus free_ranges",
                     "required": ["page_shift", "max_page_order", "page_offset", "max_low_pfn", "ram", "reserved", "zones", "free_ranges"],
                     "properties": {"free_ranges": {"type": "array", "items": {"$ref": "#/$defs/range"}}}}}},
                {"type": "object", "required": ["op"], "properties": {"op": {"const": "bye"}}},
                *(_op_schema(o) for o in wire_ops().values()),
            ]},
            "events": {
                "might_sleep": {**_UINT, "description": "times the call invoked might_sleep()"},
                "slept": {**_UINT, "description": "times the call would have blocked"},
                "reports": {"type": "array", "items": {"$ref": "#/$defs/violation"}, "description": "non-fatal reports (the kernel's WARN and continue)"},
            },
            "reply": {"oneOf": [
                {"type": "object", "required": ["protocol", "capabilities"], "description": "the reply to hello",
                 "properties": {"protocol": {"enum": list(PROTOCOLS)},
                                "capabilities": {"type": "array", "items": {"enum": list(capabilities())}, "contains": {"const": "pages"}},
                                "claims": {"type": "array", "items": {"type": "string", "description": "a claimable rule ID (kmemspec rules)"}},
                                "name": {"type": "string"}}},
                {"type": "object", "required": ["result"],
                 "description": "success: the operation's result, of the shape its x-result gives",
                 "properties": {"result": {"type": ["integer", "null", "string", "array"]}, **events}},
                {"type": "object", "required": ["error"], "description": "a detected misuse; nothing changed",
                 "properties": {"error": {"$ref": "#/$defs/violation"}, "message": {"type": "string"}, **events}},
                {"type": "object", "required": ["crash"], "description": "the implementation failed internally (IUT-NO-CRASH)",
                 "properties": {"crash": {"type": "string"}}},
            ]},
        },
        "oneOf": [{"$ref": "#/$defs/request"}, {"$ref": "#/$defs/reply"}],
    }


_RESULT_TEXT: Final[dict[Returns, str]] = {
    Returns.NOTHING: "`null`", Returns.PFN: "first PFN, or `null`", Returns.ADDR: "logical address, or `0` / `null`",
    Returns.OBJECT: "address (`16` for 0 bytes), or `null`", Returns.CACHE: "cache id (not 0), or `null`", Returns.SIZE: "int",
    Returns.BYTES: "the bytes, as a hex string", Returns.FREE_AREA: "`[[pfn, order], ...]` (or `[pfn, order, count]`: count blocks in a row)",
    Returns.SLAB_ROWS: "`[[cache, pfn, order, inuse, total], ...]`",
}


def render_ops_table() -> str:
    """The operations table of docs/protocol.md, derived from the operation table (a test keeps the two equal)."""
    rows = ["| op | capability | `args` | `result` |", "|---|---|---|---|"]
    for o in wire_ops().values():
        args = ", ".join(f"`{a.name}`" + (" (hex string)" if a.kind is Kind.BYTES else "") for a in o.args)
        rows.append(f"| `{o.name}` | {o.capability} | {args} | {_RESULT_TEXT[o.returns]} |")
    return "\n".join(rows) + "\n"


def render_schema() -> str:
    return json.dumps(protocol_schema(), indent=1) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_schema())
