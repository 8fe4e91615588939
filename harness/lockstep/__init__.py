"""The lockstep checker: every call goes to the implementation and the oracle, and is judged.

``Lockstep`` is the step driver. Each step follows one template: ask the
oracle what is allowed (an ``Expectation``), refuse what the kernel leaves
undefined, record the step, call the implementation, judge what it did
(a crash, a report, a sleep, the type of its answer), then let the
subsystem's checker check the result, adopt it into the model and name it.
The steps themselves live in per-subsystem checkers (``pages``, ``kmalloc``,
``slab``, ``slab_debug``, ...) that receive the driver; the driver exposes
their steps as its own methods, so the state machines in
``kmemspec.properties`` and a pasted counterexample drive one object. A
broken rule raises the ConformanceFailure of that rule with the steps so far.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, TypeVar

from ...refmodel import subsystems
from ...refmodel._subsystem import Configuration
from ...refmodel.errors import ConformanceFailure, InvalidArgument, Violation, failure_for
from ...refmodel.gfp import format_gfp
from ...refmodel.machine import Machine
from ...refmodel.presets import load_machine
from ...refmodel.page_alloc import Expectation, LiveBlock, Outcome, PageAllocModel
from ...refmodel.rules import binds
from ...refmodel.objects import SlabModel
from ..loader import build_iut
from ..ops import check_args, step_ops
from ..ops import op as op_named
from ..protocol import Env, Factory, TransportFailure
from ..trace import Ref, Step
from ._checker import Checker, bind_steps, call_text, checker_for_step, checkers, register_checker
from ._contents import Contents
from ._names import Namer
from . import kmalloc as _kmalloc, pages as _pages, slab as _slab, slab_debug as _slab_debug  # noqa: E402,F401  (register the built-in checkers)

__all__ = ["Checker", "Lockstep", "checker_for_step", "checkers", "register_checker"]

_T = TypeVar("_T")


class Lockstep:
    """An implementation under test, driven in step with the oracle.

    >>> iut = Lockstep(make, machine="tiny")
    >>> pfn_0 = iut.alloc_pages(gfp=GFP_KERNEL | __GFP_DMA, order=2)
    >>> iut.free_pages(pfn=pfn_0, order=2)
    """

    def __init__(self, make: Factory, machine: Machine | str = "tiny", *, label: str = "iut", check_memory: bool = True) -> None:
        self.machine = load_machine(machine) if isinstance(machine, str) else machine
        self.env = Env()
        self.label = label
        self.failure: ConformanceFailure | None = None  # the first broken rule, once one is
        #: Rules a run goes on past (``kmemspec check --skip``): their failure ends the example as ``on_skip`` says.
        self.skip: frozenset[str] = frozenset()
        self.on_skip: Callable[[ConformanceFailure], BaseException] | None = None
        self.trace: list[Step] = []
        self.quiet = False  # inside a composite step (fill): its calls are judged, not recorded
        self.implying = False  # recording a step the call before it makes (Step.implied)
        self.inner: Step | None = None  # the composite step's call being judged
        self.step_reports: list[Violation] = []  # what the last step's call reported (raised included)
        try:
            self.iut, self.capabilities, self.claims = build_iut(make, self.machine, self.env, label)
        except TransportFailure as t:  # a child process that died or hung while starting this example
            raise self.fail(t.rule_id, f"while creating the implementation for this example: {t.message}") from None
        self.models = self._build_models()
        self.coverage: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()  # MUST_SUCCEED / MAY_FAIL / MUST_FAIL expectations met
        self.requests: Counter[tuple[str, bool]] = Counter()  # (page order or kmalloc size class, served) per answered request
        self.failed = False  # after a failure model and implementation are out of step
        self.check_memory = check_memory and "memory" in self.capabilities
        self.names = Namer(self)
        self.contents = Contents(self)
        #: Checks another subsystem adds: before a step is recorded (``op``), and on every page block handed out.
        self.before_step: list[Callable[[str], None]] = []
        self.on_page_block: list[Callable[[int, int], None]] = []
        self.checkers: list[Checker] = [c for c in (cls(self) for cls in checkers()) if c.applies()]
        bind_steps(self, self.checkers)

    def _build_models(self) -> dict[str, Any]:
        """Each subsystem's oracle for this example, configured by what the implementation shows and claims."""
        config = Configuration(self.capabilities, self.claims)
        models: dict[str, Any] = {}
        for sub in subsystems():
            if sub.model is not None:
                models[sub.name] = sub.model(self.machine, models, config)
        return models

    @property
    def model(self) -> PageAllocModel:
        """The page oracle."""
        return self.models["pages"]  # type: ignore[no-any-return]

    @property
    def slab(self) -> SlabModel:
        """The slab and kmalloc oracle."""
        return self.models["slab"]  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names no checker bound: say which capability provides the step.
        o = op_named(name)
        if o is not None and o.step:
            raise AttributeError(f"{self.label} does not declare capability {o.capability!r}, so the suite has no {name}() step for it")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- what every step uses ------------------------------------------------------------

    def value_of(self, name: str) -> int:
        """The value an earlier step bound to ``name`` (for replay)."""
        return self.names.value_of(name)

    def live_blocks(self) -> list[LiveBlock]:
        return list(self.model.live.values())

    def binds(self, rule_id: str) -> bool:
        """A rule is checked unless it is claimable and not claimed."""
        return binds(rule_id, self.claims)

    def record(self, op: str, args: dict[str, Any], e: Expectation | None = None) -> Step:
        """Append the step ``op(**args)`` to the trace (arguments already turned into references)."""
        for guard in self.before_step:
            guard(op)
        comment = f"misuse: {e.misuse}; expects {e.report.__name__}" if e is not None and e.report is not None else ""
        step = Step(op, args, comment=comment, noop=e is not None and e.noop, implied=self.implying)
        if self.quiet:
            self.inner = step
        else:
            self.trace.append(step)
        return step

    def refs(self, op: str, values: dict[str, Any]) -> dict[str, Any]:
        """The arguments of ``op`` as the trace shows them: PFNs, addresses and caches by the names of earlier results."""
        o = op_named(op)
        if o is None:
            return dict(values)
        return {k: self.names.ref(o.kind_of(k), v) if o.kind_of(k) is not None else v for k, v in values.items()}  # type: ignore[arg-type]

    def refuse_unclaimed(self, e: Expectation, call: str) -> None:
        """A fatal misuse the implementation does not claim to detect is undefined behaviour: refuse to judge it."""
        # In the kernel the VM_BUG_ON is compiled out: nothing can be judged after it.
        if e.fatal and e.report_rule is None:
            raise InvalidArgument(f"{call} is a misuse the kernel does not check ({e.misuse}): its behaviour is undefined, so the suite cannot judge it")
        if e.fatal and e.report_rule not in self.claims and e.report_rule != "GFP-ZONE-BAD":
            raise InvalidArgument(
                f"{call} is a misuse ({e.misuse}) and {self.label} does not claim {e.report_rule}; "
                f"without that detection the kernel's behaviour is undefined, so the suite cannot judge it"
            )

    def step(self, op: str, values: dict[str, Any], e: Expectation, call: Callable[[], Any], *, gfp: int | None = None,
             args: dict[str, Any] | None = None, before: Callable[[], None] | None = None,
             false_report_rule: str = "IUT-NO-FALSE-REPORT",
             via: Callable[[Expectation, int | None, Callable[[], Any]], tuple[Any, bool]] | None = None) -> tuple[Step, Any, bool]:
        """The template's first half: refuse what is undefined, record, call, judge. Returns (step, result, refused).

        ``values`` are the call's arguments; ``args`` what the trace shows for them
        (by default their references, by kind); ``before`` runs between recording
        and calling (a free verifies the block's contents while it is still live);
        ``via`` is a layer's own ``call`` (the slab layer syncs its slabs after each).
        """
        if e.fatal:
            self.refuse_unclaimed(e, call_text(op, values))
        step = self.record(op, args if args is not None else self.refs(op, values), e)
        if before is not None:
            before()
        if via is not None:
            result, refused = via(e, gfp, call)
        else:
            result, refused = self.call(e, gfp, call, false_report_rule)
        return step, result, refused

    def call(self, e: Expectation | None, gfp: int | None, fn: Callable[[], Any], false_report_rule: str = "IUT-NO-FALSE-REPORT") -> tuple[Any, bool]:
        """Run one implementation call; judge crashes, sleeps and reports. Returns (result, refused).

        A raised violation of a fatal kind (a BUG, a bad page) refuses the call. A non-fatal kind raised
        (SleepInAtomic, UnexpectedGfp, CacheBusy, SlabCorruption) is the kernel's WARN, after which it goes on:
        it is judged as a report, and the call as one that returned nothing, so the expected outcome still applies.
        """
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
            raise self.fail(t.rule_id, t.message) from None
        except Exception as ex:
            raise self.fail("IUT-NO-CRASH", f"{self.label} raised {type(ex).__name__}: {ex}") from ex
        finally:
            self.env.end()
        self.coverage["IUT-NO-CRASH"] += 1
        self.coverage["CTX-NO-SLEEP"] += 1
        if self.env.sleeps:
            raise self.fail("CTX-NO-SLEEP", f"the implementation slept (env.sleep()) in a call whose GFP flags "
                                            f"({format_gfp(gfp) if gfp is not None else 'a free'}) do not allow blocking")
        reports = list(self.env.reports) + ([raised] if raised is not None else [])
        if e is not None:  # a step's own call, not an introspection after it (slabs(), free_area())
            self.step_reports = reports
        self._judge_reports(e, reports, raised is not None, false_report_rule)
        return result, raised is not None and (raised.fatal or (e is not None and e.fatal))

    def _judge_reports(self, e: Expectation | None, reports: list[Violation], raised: bool, false_report_rule: str) -> None:
        self.coverage["IUT-NO-FALSE-REPORT"] += 1
        if e is None or e.report is None:
            if not reports:  # the common case: a valid call that reported nothing
                return
            allowed = e.allowed_reports if e is not None else ()
            unexpected = [r for r in reports if not isinstance(r, allowed)]
            if unexpected:
                r = unexpected[-1]
                raise self.fail(false_report_rule, f"the call is valid, but {self.label} reported {r.kind()}: {r}")
            return
        wrong = [r for r in reports if not isinstance(r, e.allowed_reports)]
        if wrong:
            raise self.fail("IUT-NO-FALSE-REPORT", f"{e.misuse}: the kernel reports {e.report.__name__}, {self.label} reported {wrong[0].kind()}: {wrong[0]}")
        if e.report_rule in self.claims:
            self.coverage[e.report_rule] += 1  # type: ignore[index]
            if not any(isinstance(r, (e.report, *e.also_report)) for r in reports):
                raise self.fail(e.report_rule, f"{e.misuse}, which must be reported as {e.report.__name__} ({self.label} claims {e.report_rule}); nothing was reported")  # type: ignore[arg-type]
            if e.fatal and not raised:
                raise self.fail(e.report_rule, f"{e.misuse}: {self.label} reported {e.report.__name__} but went on; the kernel stops at this BUG, so raise the Violation and change nothing")  # type: ignore[arg-type]
        for kind, rule in e.beside:
            if rule in self.claims:
                self.coverage[rule] += 1
                if not any(isinstance(r, kind) for r in reports):
                    raise self.fail(rule, f"{e.misuse}: the kernel reports {kind.__name__} as well ({self.label} claims {rule}); it was not reported")

    def expect_null(self, e: Expectation, call: str) -> None:
        """A NULL answer: a failure of the liveness rule when the call must succeed and the rule binds."""
        if e.outcome is Outcome.MUST_SUCCEED and self.binds(e.rule_id):
            hint = e.hint() if e.hint is not None else ""
            raise self.fail(e.rule_id, f"{call} returned NULL, but {e.reason}" + (f": {hint}" if hint else ""))

    def int_result(self, result: Any, op: str) -> int:
        self.coverage["IUT-RETURN-TYPE"] += 1
        if isinstance(result, bool) or not isinstance(result, int):
            raise self.fail("IUT-RETURN-TYPE", f"{op} returned {result!r} ({type(result).__name__}); it must return an int or None")
        return result

    def none_result(self, result: Any, op: str) -> None:
        if result is not None:
            raise self.fail("IUT-RETURN-TYPE", f"{op} returned {result!r}; it must return None")

    def memory_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """read_phys/write_phys: only a crash is judged (they take no flags and report nothing)."""
        try:
            return fn(*args)
        except TransportFailure as t:
            raise self.fail(t.rule_id, t.message) from None
        except Exception as ex:
            name = getattr(fn, "__name__", None) or getattr(getattr(fn, "args", [None])[0], "name", "a memory call")
            raise self.fail("IUT-NO-CRASH", f"{self.label} raised {type(ex).__name__} in {name}{args[:1]!r}: {ex}") from ex

    def checked(self, check: Callable[[], _T]) -> _T:
        """Run a model check; a failure gets the steps so far and marks the run failed."""
        try:
            return check()
        except ConformanceFailure as f:
            f.steps = self._steps()
            self.failed = True
            self.failure = self.failure or f
            if f.rule_id in self.skip and self.on_skip is not None:
                raise self.on_skip(f) from None
            raise

    def _steps(self) -> list[Step]:
        """The trace so far; a failure inside a composite step names the call it stopped at."""
        steps = list(self.trace)
        if self.quiet and self.inner is not None and steps:
            last = steps[-1]
            steps[-1] = Step(last.op, last.args, last.result, f"stopped at its call {self.inner.render()}", last.noop)
        return steps

    def fail(self, rule_id: str, message: str) -> BaseException:
        """The failure of ``rule_id`` to raise: a ConformanceFailure, or for a skipped rule what ``on_skip`` makes of it."""
        self.failed = True
        f = failure_for(rule_id, message)
        f.steps = self._steps()
        self.failure = self.failure or f
        if rule_id in self.skip and self.on_skip is not None:
            return self.on_skip(f)
        return f

    def free_owned_block(self, op: str, values: dict[str, Any], pfn: int, order: int, call: Callable[[], Any]) -> bool:
        """free_pages of a block a layer above the page allocator owns: the checker of that owner judges it.

        False when the caller owns the block (or nobody does): the page oracle judges it.
        """
        blk = self.model.live_block_at(pfn)
        if blk is None or blk.owner == "caller":
            return False
        for c in self.checkers:
            if blk.owner in c.owns_pages and c.free_owned_block(op, values, pfn, order, call):
                return True
        return False

    def run_step(self, op: str, args: dict[str, Any]) -> Any:
        """Run the recorded step ``op(**args)`` (replay); InvalidArgument names an unknown step or a wrong argument."""
        o = step_ops().get(op)
        if o is None:
            raise InvalidArgument(f"trace step {op!r} is not an operation kmemspec knows ({', '.join(step_ops())})")
        if not hasattr(self, op):
            raise InvalidArgument(f"trace step {op!r} needs capability {o.capability!r}, which {self.label} does not declare")
        problem = check_args(o, args)
        if problem is not None:
            raise InvalidArgument(f"trace step {problem}")
        return getattr(self, op)(**args)

    def check_at_end(self) -> None:
        """Every checker's end-of-example checks, in registration order (the pages' contents, free area, zone counts first)."""
        for c in self.checkers:
            c.at_end()

    def replay_step(self, step: Step) -> Any:
        """Run a recorded step, its references resolved against this run's own results."""
        return self.run_step(step.op, {k: self.value_of(v.name) + v.offset if isinstance(v, Ref) else v for k, v in step.args.items()})

    # -- the end of an example ----------------------------------------------------------

    def close(self) -> None:
        """End of the example: let the implementation free what it holds (``close()``, optional)."""
        close = getattr(self.iut, "close", None)
        if callable(close):
            try:
                close()
            except TransportFailure:
                pass
