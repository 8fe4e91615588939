"""Operation traces: recorded steps, printed as a pasteable pytest test, saved and loaded as JSON.

A step's PFN and address arguments are kept as references to earlier results
(``pfn_0``, ``addr_2 + 4096``), so a replay follows the implementation's own
placement rather than the numbers of the recorded run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Final

from ..refmodel.context import Context
from ..refmodel.gfp import format_gfp
from ..refmodel.slab import SlabFlag
from .ops import Kind
from .ops import op as op_named

SCHEMA_VERSION: Final = 1


@dataclass(frozen=True)
class Ref:
    """An earlier result by name, plus an offset (an interior PFN, an address inside a page)."""

    name: str
    offset: int = 0

    def render(self) -> str:
        if not self.offset:
            return self.name
        return f"{self.name} {'+' if self.offset > 0 else '-'} {abs(self.offset)}"


Arg = int | str | Ref


@dataclass
class Step:
    """One call on the lockstep object: ``result = iut.op(**args)  # comment``."""

    op: str
    args: dict[str, Arg] = field(default_factory=dict)
    result: str | None = None
    comment: str = ""
    noop: bool = field(default=False, compare=False)  # changed nothing (a free of NULL): the runner may drop it after shrinking
    #: Made by the call before it (the ksize a claimed size class adds to every kmalloc): a replay of that call makes
    #: it again, so printed tests and replay files leave it out unless it is the failing step.
    implied: bool = field(default=False, compare=False)

    def render(self, names: dict[str, str] | None = None) -> str:
        """The step as a line of a pasted test; ``names`` renames earlier results (an item of a printed loop's list)."""
        call = self.call(names)
        line = f"{self.result} = {call}" if self.result else call
        return f"{line}  # {self.comment}" if self.comment else line

    def call(self, names: dict[str, str] | None = None) -> str:
        """``iut.op(args)``, references renamed by ``names``."""
        o = op_named(self.op)
        parts = []
        for key, value in self.args.items():
            if names and isinstance(value, Ref) and value.name in names:
                value = Ref(names[value.name], value.offset)
            parts.append(f"{key}={_render_arg(o.kind_of(key) if o is not None else None, value)}")
        return f"iut.{self.op}({', '.join(parts)})"

    def same_call(self, other: Step) -> bool:
        """The same call, whatever its result is named: a printed loop may fold the two."""
        return self.op == other.op and self.args == other.args and self.comment == other.comment and (self.result is None) == (other.result is None)

    def to_json(self) -> dict[str, Any]:
        args = {k: ({"ref": v.name, "offset": v.offset} if isinstance(v, Ref) else v) for k, v in self.args.items()}
        out: dict[str, Any] = {"op": self.op, "args": args}
        if self.result:
            out["result"] = self.result
        if self.comment:
            out["comment"] = self.comment
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        args: dict[str, Arg] = {}
        for k, v in data.get("args", {}).items():
            args[k] = Ref(v["ref"], int(v.get("offset", 0))) if isinstance(v, dict) else v if isinstance(v, str) else int(v)
        return cls(str(data["op"]), args, data.get("result"), str(data.get("comment", "")))


def _render_arg(kind: Kind | None, value: Arg) -> str:
    """An argument as a printed test shows it, by its kind (refmodel's operation table)."""
    if isinstance(value, Ref):
        return value.render()
    if isinstance(value, str):
        return repr(value)
    render = _RENDER.get(kind)  # type: ignore[arg-type]
    return render(value) if render is not None else str(value)


def _render_slab_flags(flags: int) -> str:
    """kmem_cache_create flags as SlabFlag names; bits the protocol does not name stay a number."""
    if not flags:
        return "0"
    names = [f"SlabFlag.{f.name}" for f in SlabFlag if f.name and flags & f]
    rest = flags & ~sum(int(f) for f in SlabFlag if flags & f)
    return " | ".join(names + ([hex(rest)] if rest else []))


_RENDER: Final[dict[Kind, Callable[[int], str]]] = {
    Kind.GFP: format_gfp, Kind.CONTEXT: lambda v: f"Context.{Context(v).name}", Kind.SLAB_FLAGS: lambda v: _render_slab_flags(v),
    Kind.PFN: hex, Kind.ADDR: hex, Kind.OBJECT: hex, Kind.PHYS: hex,
}

_GFP_NAME: Final = re.compile(r"\b(__GFP_[A-Z_0-9]+|GFP_[A-Z_0-9]+)\b")


#: Consecutive identical calls print as one loop from this many on.
LOOP_MIN: Final = 3


def without_implied(steps: list[Step]) -> list[Step]:
    """``steps`` less the implied ones (``Step.implied``), but for the last, where a failure shows its step."""
    return [s for k, s in enumerate(steps) if not s.implied or k == len(steps) - 1]


def render_steps(steps: list[Step]) -> list[str]:
    """``steps`` as the lines of a pasted test, the calls made the same and in the same order: a run of LOOP_MIN or
    more identical calls is one line, ``pfns_0 = [iut.alloc_pages(...) for _ in range(160)]`` (its results then
    ``pfns_0[i]``), and so are a repeated group of calls that bind nothing, ``for _ in range(6): iut.kfree(addr=0x0); ...``,
    and a call over consecutive items of such a list, ``for addr in objs_0[0:16]: iut.kmem_cache_free(cache=cache_0, addr=addr)``."""
    steps = without_implied(steps)
    lines: list[str] = []
    names: dict[str, str] = {}
    lists: Counter[str] = Counter()
    i = 0
    while i < len(steps):
        period, reps = _repetition(steps, i)
        s = steps[i]
        sweep = _sweep(steps, i, names)
        if sweep is not None and sweep[0] > period * reps:
            length, key, var, first, step = sweep
            loop = Step(s.op, {**s.args, key: Ref(key)})
            items = f"{var}[{first}:{first + length}]" if step > 0 else f"reversed({var}[{first - length + 1}:{first + 1}])"
            lines.append(f"for {key} in {items}: {loop.call(names)}")
            i += length
            continue
        if reps < LOOP_MIN:
            lines.append(s.render(names))
            i += 1
            continue
        if period > 1 or s.result is None:
            body = "; ".join(t.call(names) for t in steps[i:i + period])
            lines.append(f"for _ in range({reps}): {body}" + (f"  # {s.comment}" if s.comment else ""))
        else:
            prefix = s.result.rsplit("_", 1)[0] + "s"
            var = f"{prefix}_{lists[prefix]}"
            lists[prefix] += 1
            for k, t in enumerate(steps[i:i + reps]):
                names[t.result] = f"{var}[{k}]"  # type: ignore[index]
            lines.append(f"{var} = [{s.call(names)} for _ in range({reps})]" + (f"  # {s.comment}" if s.comment else ""))
        i += period * reps
    return lines


_ITEM: Final = re.compile(r"^(\w+)\[(\d+)\]$")


def _item(value: Arg, names: dict[str, str]) -> tuple[str, int] | None:
    """(list, index) when ``value`` is an item of a printed list (``objs_0[3]``, ``fill_1[12]``), else None."""
    if not isinstance(value, Ref) or value.offset:
        return None
    m = _ITEM.match(names.get(value.name, value.name))
    return (m.group(1), int(m.group(2))) if m else None


def _sweep(steps: list[Step], i: int, names: dict[str, str]) -> tuple[int, str, str, int, int] | None:
    """A run of LOOP_MIN or more calls from ``steps[i]`` that bind nothing and differ in one argument only, the items
    of one printed list in order: (length, argument, list, first index, +1 or -1), printed ``for addr in objs_0[4:9]: ...``."""
    s = steps[i]
    if s.result is not None or s.comment:
        return None
    for key, value in s.args.items():
        item = _item(value, names)
        if item is None:
            continue
        var, first = item
        for step in (1, -1):
            n = 1
            while i + n < len(steps) and _swept(steps[i + n], s, key) and _item(steps[i + n].args[key], names) == (var, first + step * n):
                n += 1
            if n >= LOOP_MIN and first + step * (n - 1) >= 0:
                return n, key, var, first, step
    return None


def _swept(t: Step, s: Step, key: str) -> bool:
    """``t`` is ``s``'s call with only argument ``key`` changed, and binds and says nothing."""
    return (t.op == s.op and t.result is None and not t.comment and t.args.keys() == s.args.keys()
            and all(t.args[k] == v for k, v in s.args.items() if k != key))


def _repetition(steps: list[Step], i: int, longest: int = 4) -> tuple[int, int]:
    """(period, repetitions) of the group of calls that repeats most from ``steps[i]``: period 1 for any call, up to
    ``longest`` for groups of calls that bind nothing and carry no comment."""
    best = (1, 1)
    for period in range(1, longest + 1):
        group = steps[i:i + period]
        if len(group) < period or (period > 1 and any(t.result is not None or t.comment for t in group)):
            break
        reps = 1
        while all(j < len(steps) and steps[j].same_call(group[k]) for k, j in enumerate(range(i + reps * period, i + (reps + 1) * period))):
            reps += 1
        if reps >= LOOP_MIN and period * reps > best[0] * best[1]:
            best = (period, reps)
    return best


def render_test(steps: list[Step], import_lines: list[str], machine_spec: str, rule_id: str, message: str) -> str:
    """A pytest function that replays ``steps`` through the lockstep checker and fails as the run did."""
    body = render_steps(steps)
    # Names in the calls only: a misuse comment may name a kernel mask (GFP_SLAB_BUG_MASK) the model does not export.
    gfp_names = sorted({n for line in body for n in _GFP_NAME.findall(line.split("  # ", 1)[0])})
    lines = ["from kmemspec.harness import Lockstep"]
    if any("Context." in line for line in body):
        lines.append("from kmemspec.refmodel import Context")
    if any("SlabFlag." in line for line in body):
        lines.append("from kmemspec.refmodel.slab import SlabFlag")
    if gfp_names:
        lines.append(f"from kmemspec.refmodel.gfp import {', '.join(gfp_names)}")
    lines += import_lines
    lines += ["", "", f"def test_kmemspec_{rule_id.lower().replace('-', '_')}():"]
    lines.append(f"    # {rule_id}: {message}".rstrip())
    lines.append(f"    iut = Lockstep(make, machine={machine_spec!r})")
    lines += [f"    {line}" for line in body]
    return "\n".join(lines) + "\n"


def dump_trace(steps: list[Step], *, impl: str, machine: Any, rule_id: str = "", message: str = "",
               machine_description: dict[str, Any] | None = None) -> str:
    """The replay file (JSON) for ``kmemspec replay``.

    ``machine_description`` (``Machine.to_dict()``) lets a replay rebuild the
    machine of the run after its file changed; without it, the spelling is used.
    """
    return json.dumps(
        {
            "schema": SCHEMA_VERSION,
            "kind": "kmemspec-trace",
            "impl": impl,
            "machine": machine,
            **({"machine_description": machine_description} if machine_description is not None else {}),
            "rule_id": rule_id,
            "message": message,
            "steps": [s.to_json() for s in without_implied(steps)],
        },
        indent=1,
    )


def load_trace(text: str) -> dict[str, Any]:
    """Parse a replay file; raises ValueError naming what is wrong."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("kind") != "kmemspec-trace":
        raise ValueError("not a kmemspec trace (expected a JSON object with \"kind\": \"kmemspec-trace\")")
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"trace schema {data.get('schema')!r} is not {SCHEMA_VERSION}, the one this kmemspec reads")
    data["steps"] = [Step.from_json(s) for s in data.get("steps", [])]
    return data
