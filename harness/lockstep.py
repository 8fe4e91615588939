"""The lockstep checker: every call goes to the implementation and the oracle, and is judged.

``Lockstep`` has the protocol's method names; each call asks the oracle what
is allowed, calls the implementation, checks what came back (or what was
reported, or whether it slept), adopts the implementation's choice into the
model, and records the step. A broken rule raises the ConformanceFailure of
that rule with the steps so far attached. The state machines in
``kmemspec.properties`` drive it; a counterexample replays through it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from typing import Any, Callable, TypeVar

from ..refmodel.context import Context
from ..refmodel.errors import ConformanceFailure, InvalidArgument, Violation, failure_for
from ..refmodel.gfp import GFP, format_gfp
from ..refmodel.machine import Machine, load_machine
from ..refmodel.page_alloc import Expectation, LiveBlock, Outcome, PageAllocModel
from ..refmodel.rules import CLAIMABLE
from ..refmodel.slab import SlabModel
from .loader import build_iut
from .protocol import Env, Factory, TransportFailure
from .slab_lockstep import SlabCalls
from .trace import Ref, Step

_PLACEMENT_RULES = ("BUDDY-ORDER-LIMIT", "BUDDY-ALIGN", "PAGE-RAM-ONLY", "BUDDY-NO-CROSS-ZONE", "GFP-ZONE-ELIGIBLE", "BUDDY-NO-OVERLAP")
_T = TypeVar("_T")
_PATTERN_LEN = 16
_ZERO, _HIGHMEM = int(GFP.ZERO), int(GFP.HIGHMEM)


class Lockstep(SlabCalls):
    """An implementation under test, driven in step with the buddy oracle.

    >>> iut = Lockstep(make, machine="tiny")
    >>> pfn_0 = iut.alloc_pages(gfp=GFP_KERNEL | __GFP_DMA, order=2)
    >>> iut.free_pages(pfn=pfn_0, order=2)
    """

    def __init__(self, make: Factory, machine: Machine | str = "tiny", *, label: str = "iut", check_memory: bool = True) -> None:
        self.machine = load_machine(machine) if isinstance(machine, str) else machine
        self.env = Env()
        self.label = label
        self.failure: ConformanceFailure | None = None  # the first broken rule, once one is
        try:
            self.iut, self.capabilities, self.claims = build_iut(make, self.machine, self.env, label)
        except TransportFailure as t:  # a child process that died or hung while starting this example
            self.trace = []
            raise self._fail(t.rule_id, f"while creating the implementation for this example: {t.message}") from None
        self.model = PageAllocModel(self.machine)
        self.slab = SlabModel(self.machine, self.model)
        self.slab.exact = "slab_info" in self.capabilities
        if self._binds("SLAB-NO-SPURIOUS-FAIL"):  # else no slab allocation is ever required: skip the page query per kmalloc
            self.slab.page_liveness = frozenset(r for r in ("BUDDY-NO-SPURIOUS-FAIL", "NOFAIL-NEVER-NULL") if self._binds(r))
        self.trace: list[Step] = []
        self.coverage: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()  # MUST_SUCCEED / MAY_FAIL / MUST_FAIL expectations met
        self.failed = False  # after a failure model and implementation are out of step
        self.opaque = False  # page liveness was degraded because slab pages are invisible
        self._check_memory = check_memory and "memory" in self.capabilities
        self._values: dict[str, int] = {}  # every name ever bound -> its value
        self._names: dict[int, str] = {}  # live block first pfn -> name
        self._addr_names: dict[int, str] = {}  # freed or live address -> name
        self._pfn_names: dict[int, str] = {}  # freed or live pfn -> name
        self._seq = Counter[str]()
        self._patterns: dict[int, bytes] = {}  # live block first pfn -> its pattern
        self._obj_patterns: dict[int, list[bytes]] = {}  # live object address -> its patterns
        self._obj_names: dict[int, str] = {}  # live object address -> name
        self._freed_obj_names: dict[int, str] = {}  # every object address ever bound -> its last name
        self._cache_names: dict[int, str] = {}

    # -- the protocol's calls ----------------------------------------------------

    def set_context(self, ctx: Context) -> None:
        """Enter execution context ``ctx`` (process, atomic, softirq, hardirq)."""
        ctx = Context(ctx)
        self.trace.append(Step("set_context", {"ctx": int(ctx)}))
        self.env.context = ctx

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        """alloc_pages(gfp, order): the first PFN of a 2^order block, or None."""
        e = self._expect(gfp, order, logical=False)
        if e.fatal:
            self._refuse_unclaimed(e, f"alloc_pages(gfp={format_gfp(gfp)}, order={order})")
        step = self._record("alloc_pages", {"gfp": gfp, "order": order}, e)
        result, refused = self._call(e, gfp, lambda: self.iut.alloc_pages(gfp, order))
        if refused:  # a reported misuse, refused: nothing was allocated
            return None
        if result is None:
            return self._expect_null(e, f"alloc_pages({format_gfp(gfp)}, order={order})")
        pfn = self._int_result(result, "alloc_pages")
        self._place(gfp, order, pfn, logical=False)
        step.result = self._bind("pfn", pfn, pfn)
        return pfn

    def free_pages(self, pfn: int, order: int) -> None:
        """free_pages(pfn, order) (the kernel's __free_pages(pfn_to_page(pfn), order))."""
        slab_e = self.slab.expect_free_slab_block(pfn, order)
        if slab_e is not None:
            return self._free_slab_block(slab_e, "free_pages", {"pfn": self._pfn_arg(pfn), "order": order}, pfn, lambda: self.iut.free_pages(pfn, order))
        e = self.model.expect_free(pfn, order)
        if e.fatal:
            self._refuse_unclaimed(e, f"free_pages(pfn={pfn:#x}, order={order})")
        self._record("free_pages", {"pfn": self._pfn_arg(pfn), "order": order}, e)
        self._free(e, pfn, order, lambda: self.iut.free_pages(pfn, order))

    def get_free_pages(self, gfp: int, order: int) -> int:
        """__get_free_pages(gfp, order): a logical address, or 0."""
        e = self._expect(gfp, order, logical=True)
        if e.fatal:
            self._refuse_unclaimed(e, f"get_free_pages(gfp={format_gfp(gfp)}, order={order})")
        step = self._record("get_free_pages", {"gfp": gfp, "order": order}, e)
        result, refused = self._call(e, gfp, lambda: self.iut.get_free_pages(gfp, order))
        if refused:
            return 0
        if result is None or result == 0:
            self._expect_null(e, f"__get_free_pages({format_gfp(gfp)}, order={order})")
            return 0
        addr = self._int_result(result, "get_free_pages")
        pfn = self.machine.virt_to_pfn(addr)
        self.coverage["API-LOWMEM-ADDRESS"] += 1
        if pfn is None or addr % self.machine.page_size:
            raise self._fail("API-LOWMEM-ADDRESS", f"__get_free_pages({format_gfp(gfp)}, order={order}) returned {addr:#x}, which is not the page-aligned logical address of a lowmem page")
        self._place(gfp, order, pfn, logical=True)
        step.result = self._bind("addr", addr, pfn)
        return addr

    def free_pages_addr(self, addr: int, order: int) -> None:
        """free_pages(addr, order) on a logical address; free_pages(0, order) does nothing."""
        e, pfn = self.model.expect_free_addr(addr, order)
        # virt_to_page() rounds down: any address in a slab's first page frees that slab page.
        slab_e = self.slab.expect_free_slab_block(pfn, order) if pfn is not None else None
        if slab_e is not None:
            return self._free_slab_block(slab_e, "free_pages_addr", {"addr": self._obj_arg(addr), "order": order}, pfn,  # type: ignore[arg-type]
                                         lambda: self.iut.free_pages_addr(addr, order))
        if e.fatal:
            self._refuse_unclaimed(e, f"free_pages_addr(addr={addr:#x}, order={order})")
        self._record("free_pages_addr", {"addr": self._addr_arg(addr), "order": order}, e)
        call = lambda: self.iut.free_pages_addr(addr, order)  # noqa: E731
        if pfn is None and e.report is None:  # free_pages(0): nothing to adopt
            _, refused = self._call(e, None, call, false_report_rule="API-FREE-ADDR-NULL")
            self.coverage["API-FREE-ADDR-NULL"] += 1
            return
        self._free(e, pfn if pfn is not None else -1, order, call)

    def check_free_area(self) -> None:
        """INTROSPECT-FREE-AREA: the implementation's free blocks cover exactly the free pages."""
        if "free_area" not in self.capabilities:
            return
        self.trace.append(Step("check_free_area"))
        blocks, _ = self._call(None, None, self.iut.free_area)
        try:
            pairs = [(int(p), int(o)) for p, o in blocks]
        except (TypeError, ValueError):
            raise self._fail("IUT-RETURN-TYPE", f"free_area() returned {type(blocks).__name__}; it must return a list of (pfn, order) pairs") from None
        self.coverage["INTROSPECT-FREE-AREA"] += 1
        # Pages the slab layer holds are invisible to the model: then only "free here is free there".
        self._checked(lambda: self.model.check_free_area(pairs, exact=not self.slab.opaque))

    def check_contents(self) -> None:
        """PAGE-CONTENTS-INTACT for every live block (where memory is exposed)."""
        if not self._check_memory:
            return
        self.trace.append(Step("check_contents"))
        self._verify_all()
        self._verify_all_objects()

    def close(self) -> None:
        """End of the example: let the implementation free what it holds (``close()``, optional)."""
        close = getattr(self.iut, "close", None)
        if callable(close):
            try:
                close()
            except TransportFailure:
                pass

    def _verify_all(self) -> None:
        for pfn in list(self._patterns):
            self._verify_pattern(self.model.live[pfn])

    # -- names ---------------------------------------------------------------------

    def value_of(self, name: str) -> int:
        """The value an earlier step bound to ``name`` (for replay)."""
        try:
            return self._values[name]
        except KeyError:
            raise InvalidArgument(f"this run never bound {name!r}; the implementation behaved differently from the recorded run") from None

    def live_blocks(self) -> list[LiveBlock]:
        return list(self.model.live.values())

    def _bind(self, kind: str, value: int, pfn: int) -> str:
        name = f"{kind}_{self._seq[kind]}"
        self._seq[kind] += 1
        self._values[name] = value
        (self._addr_names if kind == "addr" else self._pfn_names)[value] = name
        self._names[pfn] = name
        return name

    def _pfn_arg(self, pfn: int) -> int | Ref:
        blk = self.model.live_block_at(pfn)
        if blk is not None and blk.pfn in self._names and self._names[blk.pfn].startswith("pfn"):
            return Ref(self._names[blk.pfn], pfn - blk.pfn)
        if pfn in self._pfn_names:
            return Ref(self._pfn_names[pfn])
        return pfn

    def _addr_arg(self, addr: int) -> int | Ref:
        base = addr - addr % self.machine.page_size
        pfn = self.machine.virt_to_pfn(base)
        blk = self.model.live_block_at(pfn) if pfn is not None else None
        if blk is not None and self._names.get(blk.pfn, "").startswith("addr"):
            name = self._names[blk.pfn]
            return Ref(name, addr - self._values[name])
        if addr in self._addr_names:
            return Ref(self._addr_names[addr])
        return addr

    # -- judging ---------------------------------------------------------------------

    def _expect(self, gfp: int, order: int, *, logical: bool) -> Expectation:
        e = self.model.expect_alloc(gfp, order, self.env.context, logical=logical)
        if e.outcome is Outcome.MUST_SUCCEED and self.slab.opaque:
            # The slab layer holds pages the model cannot see: success is no longer provable.
            self.opaque = True
            e = replace(e, outcome=Outcome.MAY_FAIL)
        self.outcomes[e.outcome.name] += 1
        if e.outcome is Outcome.MUST_SUCCEED and self._binds(e.rule_id):
            self.coverage[e.rule_id] += 1
        return e

    def _binds(self, rule_id: str) -> bool:
        """A rule is checked unless it is claimable and not claimed."""
        return rule_id not in CLAIMABLE or rule_id in self.claims

    def _record(self, op: str, args: dict[str, Any], e: Expectation) -> Step:
        if self.slab.corrupt and op != "kmem_cache_validate":
            raise InvalidArgument(f"{op} right after clobber: a corruption is judged by kmem_cache_validate of its cache alone, "
                                  f"before anything else rewrites the byte (as slub_kunit validates at once)")
        comment = f"misuse: {e.misuse}; expects {e.report.__name__}" if e.report is not None else ""
        step = Step(op, args, comment=comment)
        self.trace.append(step)
        return step

    def _refuse_unclaimed(self, e: Expectation, call: str) -> None:
        # A fatal misuse the implementation does not claim to detect is undefined behaviour
        # in the kernel (VM_BUG_ON compiled out): nothing can be judged after it.
        if e.fatal and e.report_rule is None:
            raise InvalidArgument(f"{call} is a misuse the kernel does not check ({e.misuse}): its behaviour is undefined, so the suite cannot judge it")
        if e.fatal and e.report_rule not in self.claims and e.report_rule != "GFP-ZONE-BAD":
            raise InvalidArgument(
                f"{call} is a misuse ({e.misuse}) and {self.label} does not claim {e.report_rule}; "
                f"without that detection the kernel's behaviour is undefined, so the suite cannot judge it"
            )

    def _call(self, e: Expectation | None, gfp: int | None, fn: Callable[[], Any], false_report_rule: str = "IUT-NO-FALSE-REPORT") -> tuple[Any, bool]:
        """Run one implementation call; judge reports and sleeps. Returns (result, refused)."""
        self.env.begin(gfp)
        raised: Violation | None = None
        result: Any = None
        try:
            result = fn()
        except Violation as v:
            raised = v
        except ConformanceFailure:
            raise
        except TransportFailure as t:
            raise self._fail(t.rule_id, t.message) from None
        except Exception as ex:
            raise self._fail("IUT-NO-CRASH", f"{self.label} raised {type(ex).__name__}: {ex}") from ex
        finally:
            self.env.end()
        self.coverage["IUT-NO-CRASH"] += 1
        self.coverage["CTX-NO-SLEEP"] += 1
        if self.env.sleeps:
            raise self._fail("CTX-NO-SLEEP", f"the implementation slept (env.sleep()) in a call whose GFP flags "
                                             f"({format_gfp(gfp) if gfp is not None else 'a free'}) do not allow blocking")
        reports = list(self.env.reports) + ([raised] if raised is not None else [])
        self._judge_reports(e, reports, raised is not None, false_report_rule)
        return result, raised is not None

    def _judge_reports(self, e: Expectation | None, reports: list[Violation], raised: bool, false_report_rule: str) -> None:
        self.coverage["IUT-NO-FALSE-REPORT"] += 1
        if e is None or e.report is None:
            allowed = e.also_report if e is not None else ()
            unexpected = [r for r in reports if not isinstance(r, allowed)]
            if unexpected:
                r = unexpected[-1]
                raise self._fail(false_report_rule, f"the call is valid, but {self.label} reported {r.kind()}: {r}")
            return
        wrong = [r for r in reports if not isinstance(r, (e.report, *e.also_report))]
        if wrong:
            raise self._fail("IUT-NO-FALSE-REPORT", f"{e.misuse}: the kernel reports {e.report.__name__}, {self.label} reported {wrong[0].kind()}: {wrong[0]}")
        claimed = e.report_rule in self.claims
        if claimed:
            self.coverage[e.report_rule] += 1  # type: ignore[index]
            if not any(isinstance(r, (e.report, *e.also_report)) for r in reports):
                raise self._fail(e.report_rule, f"{e.misuse}, which must be reported as {e.report.__name__} ({self.label} claims {e.report_rule}); nothing was reported")  # type: ignore[arg-type]
            if e.fatal and not raised:
                raise self._fail(e.report_rule, f"{e.misuse}: {self.label} reported {e.report.__name__} but went on; the kernel stops at this BUG, so raise the Violation and change nothing")  # type: ignore[arg-type]

    def _expect_null(self, e: Expectation, call: str) -> None:
        if e.outcome is Outcome.MUST_SUCCEED and self._binds(e.rule_id):
            raise self._fail(e.rule_id, f"{call} returned NULL, but {e.reason}")
        return None

    def _int_result(self, result: Any, op: str) -> int:
        self.coverage["IUT-RETURN-TYPE"] += 1
        if isinstance(result, bool) or not isinstance(result, int):
            raise self._fail("IUT-RETURN-TYPE", f"{op} returned {result!r} ({type(result).__name__}); it must return an int or None")
        return result

    def _place(self, gfp: int, order: int, pfn: int, *, logical: bool) -> None:
        for rule in _PLACEMENT_RULES:
            self.coverage[rule] += 1
        self._checked(lambda: self.model.check_alloc(gfp, order, pfn, logical=logical))
        if self.slab.objects:
            self._checked(lambda: self.slab.check_page_block(pfn, order))
        if "WMARK-RESERVES-KEPT" in self.claims:
            self.coverage["WMARK-RESERVES-KEPT"] += 1
            mask = gfp & ~_HIGHMEM if logical else gfp  # __get_free_pages strips __GFP_HIGHMEM
            self._checked(lambda: self.model.check_reserves(mask, order, pfn))
        blk = self.model.adopt_alloc(gfp, order, pfn, step=len(self.trace) - 1)
        if self._check_memory:
            if gfp & _ZERO:
                self._verify_zero(blk)
            self._write_pattern(blk)

    def _free(self, e: Expectation, pfn: int, order: int, call: Callable[[], Any]) -> None:
        valid = e.report is None
        if valid and self._check_memory:
            self._verify_pattern(self.model.live[pfn])
        result, refused = self._call(e, None, call)
        if result is not None:
            raise self._fail("IUT-RETURN-TYPE", f"a free returned {result!r}; it must return None")
        if valid:
            self.model.adopt_free(pfn, order)
            self._patterns.pop(pfn, None)
            self._names.pop(pfn, None)
        elif self._check_memory:
            self._verify_all()  # a refused misuse leaves every live block intact

    # -- memory contents ---------------------------------------------------------------

    def _pattern_sites(self, blk: LiveBlock) -> list[int]:
        ps = self.machine.page_size
        first = blk.pfn * ps
        last = (blk.end_pfn * ps) - _PATTERN_LEN
        mid = (blk.pfn + (1 << blk.order) // 2) * ps + ps // 2
        return sorted({first, mid, last})

    def _memory_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """read_phys/write_phys: only a crash is judged (they take no flags and report nothing)."""
        try:
            return fn(*args)
        except TransportFailure as t:
            raise self._fail(t.rule_id, t.message) from None
        except Exception as ex:
            raise self._fail("IUT-NO-CRASH", f"{self.label} raised {type(ex).__name__} in {fn.__name__}{args[:1]!r}: {ex}") from ex

    def _write_pattern(self, blk: LiveBlock) -> None:
        pattern = hashlib.blake2b(f"{blk.pfn}:{blk.order}:{blk.step}".encode(), digest_size=_PATTERN_LEN).digest()
        self._patterns[blk.pfn] = pattern
        for site in self._pattern_sites(blk):
            self._memory_call(self.iut.write_phys, site, pattern)

    def _verify_pattern(self, blk: LiveBlock) -> None:
        pattern = self._patterns.get(blk.pfn)
        if pattern is None:
            return
        self.coverage["PAGE-CONTENTS-INTACT"] += 1
        for site in self._pattern_sites(blk):
            got = self._memory_call(self.iut.read_phys, site, _PATTERN_LEN)
            if bytes(got) != pattern:
                raise self._fail("PAGE-CONTENTS-INTACT", f"the order-{blk.order} block at pfn {blk.pfn:#x} (allocated at step {blk.step}) "
                                                         f"changed while live: at physical address {site:#x} the caller wrote {pattern.hex()}, it now reads {bytes(got).hex()}")

    def _verify_zero(self, blk: LiveBlock) -> None:
        self.coverage["API-ZERO"] += 1
        ps = self.machine.page_size
        for pfn in sorted({blk.pfn, blk.pfn + (1 << blk.order) // 2, blk.end_pfn - 1}):
            got = self._memory_call(self.iut.read_phys, pfn * ps, ps)
            data = bytes(got)
            if data != bytes(ps):
                off = next(i for i, b in enumerate(data) if b)
                raise self._fail("API-ZERO", f"the order-{blk.order} block at pfn {blk.pfn:#x} was allocated with __GFP_ZERO but byte {off} of pfn {pfn:#x} reads {data[off]:#04x}")

    # -- failures ------------------------------------------------------------------------

    def _checked(self, check: Callable[[], None]) -> None:
        self._checked_value(check)

    def _checked_value(self, check: Callable[[], _T]) -> _T:
        """Run a model check; a failure gets the steps so far and marks the run failed."""
        try:
            return check()
        except ConformanceFailure as f:
            f.steps = list(self.trace)
            self.failed = True
            self.failure = self.failure or f
            raise

    def _fail(self, rule_id: str, message: str) -> ConformanceFailure:
        self.failed = True
        f = failure_for(rule_id, message)
        f.steps = list(self.trace)
        self.failure = self.failure or f
        return f
