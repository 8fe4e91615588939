"""Running the suite: profiles, the Hypothesis run, progress, and the collected result.

``run_check`` runs the suite for one implementation on one machine under a
profile (the rule sets its capabilities select, composed by
``state_machine_for``) and returns a ``CheckResult``: the distinct failures
(each a rule ID, a message and the shrunk steps), how often each rule was
checked, and the run's numbers. Reports are written by ``kmemspec.harness.report``.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Iterator, TextIO

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.errors import Flaky, Unsatisfiable, UnsatisfiedAssumption
from hypothesis.stateful import get_state_machine_test

from ..harness.adapters.process import HangBudgetExhausted
from ..harness.loader import ImplSpec, build_iut
from ..harness.lockstep import Lockstep
from ..harness.protocol import Env, TransportFailure
from ..harness.trace import Step
from ..refmodel.errors import ConformanceFailure, InvalidArgument
from ..refmodel.machine import Machine
from ..refmodel.rules import PROCESS_RULES
from ._subsystems import state_machine_for
from .machines import Target
from .machines.pages import FILL_LIMIT_BLOCKS, fill_zone_bits


@dataclass(frozen=True)
class Profile:
    """How hard to look: examples (fresh implementations) and steps per example."""

    name: str
    max_examples: int
    step_count: int
    description: str
    shrink_seconds: float = 15.0  # shrinking stops this long after the first failure; the shortest sequences so far are reported


PROFILES: Final[dict[str, Profile]] = {
    p.name: p
    for p in (
        Profile("smoke", 20, 20, "seconds: shows that an implementation is wired up, not that it conforms", 5.0),
        Profile("ci", 120, 40, "the default: the page suite in well under 2 minutes on 2 cores", 15.0),
        Profile("dev", 500, 60, "a deeper local run, a few minutes", 30.0),
        Profile("campaign", 5000, 120, "long exploration for research and release gating; shows progress", 120.0),
    )
}


@dataclass
class Failure:
    """One broken rule with its shrunk counterexample."""

    rule_id: str
    message: str
    steps: list[Step]
    skipped: bool = False  # a rule the run went on past (--skip): the shortest sequence seen, not shrunk


@dataclass
class CheckResult:
    """The outcome of one run."""

    impl: str
    label: str
    machine: Machine
    machine_spec: str
    profile: Profile
    seed: int
    capabilities: frozenset[str]
    claims: frozenset[str]
    transport: str = "python"
    isolated: bool = False
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (page order or kmalloc size class, served)
    examples: int = 0
    steps: int = 0
    seconds: float = 0.0

    @property
    def conforming(self) -> bool:
        return not self.failures


class ShrinkBudgetExhausted(BaseException):
    """Shrinking has run for the profile's ``shrink_seconds``: the run stops with the shortest failures found.

    A BaseException, so that Hypothesis does not take it for one more failing example.
    """


class _Progress:
    """Example and step counts on the terminal while the run goes (a line every few seconds off a tty)."""

    def __init__(self, result: CheckResult, stream: TextIO | None, skip: frozenset[str] = frozenset()) -> None:
        self.result, self.stream, self.skip = result, stream, skip
        self.first_failure: float | None = None  # when the search met its first failure: shrinking starts
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = bool(stream and stream.isatty())
        self.seen: dict[str, Failure] = {}  # the shortest failure per rule, should the run be cut short
        self.departures: dict[str, Failure] = {}  # skipped rules: the shortest failure seen (unshrunk)
        self.departed: Counter[str] = Counter()  # skipped rules: examples their failure ended
        self.stopped_early = False  # a hang budget cut the run short: no more calls into the implementation

    def example(self, iut: Lockstep) -> None:
        if self.first_failure is not None and time.monotonic() - self.first_failure > self.result.profile.shrink_seconds:
            raise ShrinkBudgetExhausted(f"shrinking stopped after {self.result.profile.shrink_seconds:g} s (profile "
                                        f"{self.result.profile.name}'s shrink_seconds)")
        self.result.examples += 1
        if self.skip:
            iut.skip, iut.on_skip = self.skip, self._departure
        self.show()

    def _departure(self, f: ConformanceFailure) -> BaseException:
        """A skipped rule failed: keep the shortest sequence, and end the example without failing the run."""
        self.departed[f.rule_id] += 1
        known = self.departures.get(f.rule_id)
        if known is None or len(f.steps) < len(known.steps):
            self.departures[f.rule_id] = Failure(f.rule_id, f.message, list(f.steps), skipped=True)
        return UnsatisfiedAssumption(f"{f.rule_id} is skipped")

    def teardown(self, iut: Lockstep) -> None:
        f = iut.failure
        if f is not None and f.rule_id not in self.skip and self.first_failure is None:
            self.first_failure = time.monotonic()
        if f is not None and (f.rule_id not in self.seen or len(f.steps) < len(self.seen[f.rule_id].steps)):
            self.seen[f.rule_id] = Failure(f.rule_id, f.message, list(f.steps))
        self.result.steps += len(iut.trace)
        self.result.coverage.update(iut.coverage)
        self.result.outcomes.update(iut.outcomes)
        self.result.requests.update(iut.requests)

    def show(self, final: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.tty else 10.0):
            return
        self.last = now
        r = self.result
        line = (f"kmemspec: {r.label} on {r.machine_spec} [{r.profile.name}]: {r.examples} examples "
                f"(target {r.profile.max_examples}), {r.steps} steps, {now - self.start:.1f}s")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_check(
    impl: ImplSpec,
    machine: Machine,
    *,
    machine_spec: str,
    profile: Profile = PROFILES["ci"],
    seed_value: int | None = None,
    progress: TextIO | None = sys.stderr,
    shrink: bool = True,
    skip: frozenset[str] = frozenset(),
) -> CheckResult:
    """Run the suite on ``impl``; InvalidDefinition propagates (exit 2), conformance failures are collected.

    Child processes the implementation runs in are stopped when the run ends.
    ``shrink=False`` reports failures as found, unshrunk (for kill-rate measurements).
    A failure of a rule in ``skip`` (a known departure) ends its example without ending
    the search, so every other rule is still judged; it is reported with the shortest
    sequence seen, unshrunk, and how many examples it ended.
    """
    try:
        return _run(impl, machine, machine_spec, profile, seed_value, progress, shrink, skip)
    finally:
        impl.close()


def _run(impl: ImplSpec, machine: Machine, machine_spec: str, profile: Profile, seed_value: int | None,
         progress: TextIO | None, shrink: bool, skip: frozenset[str]) -> CheckResult:
    chosen = seed_value if seed_value is not None else random.SystemRandom().randrange(1 << 32)
    try:
        probe, caps, claims = build_iut(impl.factory, machine, Env(), impl.label)
    except TransportFailure as t:  # it died or hung before the first operation: nothing to shrink
        result = CheckResult(impl.spec, impl.label, machine, machine_spec, profile, chosen, frozenset(), frozenset(),
                             impl.transport, impl.isolated)
        result.failures = [Failure(t.rule_id, f"while creating the implementation: {t.message}", [])]
        return result
    close = getattr(probe, "close", None)
    if callable(close):
        close()
    if progress is not None:  # before the search, so that a crash of an in-process implementation cannot lose it
        print(f"kmemspec: checking {impl.label} on {machine_spec} with seed {chosen}", file=progress, flush=True)
    result = CheckResult(impl.spec, impl.label, machine, machine_spec, profile, chosen, caps, claims, impl.transport, impl.isolated)
    bar = _Progress(result, progress, skip)
    target = Target(impl.factory, impl.label, machine, caps, claims, bar.example, bar.teardown)
    machine_cls = state_machine_for(target)
    test = get_state_machine_test(
        machine_cls,
        settings=settings(
            max_examples=profile.max_examples,
            stateful_step_count=profile.step_count,
            deadline=None,
            database=None,
            verbosity=Verbosity.quiet,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=True,
            print_blob=False,
            # No explain phase: its coverage tracing costs more than the rest of a
            # shrink, and the lockstep message already says what went wrong.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target] + ([Phase.shrink] if shrink else []),
        ),
    )
    started = time.monotonic()
    try:
        with _generation_independent_of_loaded_code():
            seed(chosen)(test)()
    except BaseException as exc:  # noqa: BLE001 - sorted below, anything else re-raised
        failures = _conformance_failures(exc)
        budget = _in_chain(exc, HangBudgetExhausted)
        bound = _in_chain(exc, ShrinkBudgetExhausted)
        if budget is not None:  # Hypothesis may wrap it while recording the cut-short example
            bar.stopped_early = True
            result.failures = sorted(bar.seen.values(), key=lambda f: f.rule_id)
            result.notes.append(f"the run stopped early: {budget}; failures are the shortest sequences found before that (raise --hang-budget to shrink further)")
        elif bound is not None:
            result.failures = sorted((f for f in bar.seen.values() if f.rule_id not in skip), key=lambda f: f.rule_id)
            result.notes.append(f"{bound}; failures are the shortest sequences found by then (a dev or campaign profile shrinks longer)")
        elif failures is not None:
            result.failures = _dedupe(failures)
        elif _in_chain(exc, Unsatisfiable) is not None and bar.departed:
            result.notes.append("every example the search tried ended at a skipped rule; the other rules were judged only "
                                "on the steps before it")
        elif _in_group(exc, Flaky) and bar.seen:
            # The same operations did not give the same outcome twice: a nondeterministic
            # implementation (or one that keeps state between examples). Report what was seen.
            result.failures = sorted(bar.seen.values(), key=lambda f: f.rule_id)
            result.notes.append(f"the implementation is nondeterministic: the same operations gave different outcomes ({type(exc).__name__}); "
                                "failures are the shortest sequences seen, and replaying one may not reproduce it")
        elif _in_chain(exc, InvalidArgument) is not None or _in_group(exc, InvalidArgument):
            # Not the user's mistake: the state machine asked the checker for a step it refuses to judge.
            raise RuntimeError("the state machine generated a step the lockstep checker cannot judge (above); "
                               "this is a bug of kmemspec's suite, not of the implementation") from exc
        else:
            raise
    if shrink and not bar.stopped_early:
        result.failures = [_without_noops(impl, machine, f) for f in result.failures]
    _add_departures(result, bar)
    leaks = _leaks_undetectable(machine, caps, claims)
    if leaks:
        result.notes.append(leaks)
    result.seconds = time.monotonic() - started
    if impl.transport == "process":  # every request of the run was answered alive, in time and well-formed, or failed above
        for rule_id in PROCESS_RULES:
            result.coverage[rule_id] += result.steps
    bar.show(final=True)
    return result


@contextlib.contextmanager
def _generation_independent_of_loaded_code() -> Iterator[None]:
    """Keep Hypothesis from mixing literals of the loaded local modules into generated values.

    Hypothesis (6.1xx) biases draws towards constants found in every local
    module in sys.modules. Which modules are loaded differs between the CLI,
    the pytest plugin, --isolate and the user's own implementation module, so
    ``--seed N`` would not reproduce a run across them. This reaches into a
    private API; if it is gone, generation simply stays as Hypothesis makes it.
    """
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if original is None or cache is None or not hasattr(cache, "cache"):
        yield
        return
    empty = Constants()
    providers._get_local_constants = lambda: empty
    cache.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()


def _in_group(exc: BaseException, kind: type[BaseException]) -> bool:
    """``exc`` is ``kind`` or an exception group holding one (Hypothesis reports several errors as a group)."""
    if isinstance(exc, kind):
        return True
    return isinstance(exc, BaseExceptionGroup) and any(_in_group(e, kind) for e in exc.exceptions)


def _in_chain(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _conformance_failures(exc: BaseException) -> list[ConformanceFailure] | None:
    """The ConformanceFailures in ``exc`` (an exception group, or Hypothesis's Flaky wrapper), or None."""
    if isinstance(exc, ConformanceFailure):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        found: list[ConformanceFailure] = []
        for sub in exc.exceptions:
            inner = _conformance_failures(sub)
            if inner is None:
                return None
            found += inner
        return found
    return None


def _leaks_undetectable(machine: Machine, caps: frozenset[str], claims: frozenset[str]) -> str:
    """Why a leak of pages could pass this run unseen, or "" when something would show it."""
    if caps & {"free_area", "zone_free_pages"}:
        return ""
    if "BUDDY-NO-SPURIOUS-FAIL" in claims and fill_zone_bits(machine) is not None:
        return ""
    why = ("it does not claim BUDDY-NO-SPURIOUS-FAIL" if "BUDDY-NO-SPURIOUS-FAIL" not in claims else
           f"zones are filled to exhaustion only where a zonelist holds at most {FILL_LIMIT_BLOCKS} top-order blocks' worth of "
           "pages, and none of this machine's does")
    return ("leaks are not detectable on this run: the implementation shows neither free_area nor zone_free_pages, and "
            f"{why}; declare zone_free_pages (each zone's free-page count, as /proc/zoneinfo's nr_free_pages) to have them seen")


def _add_departures(result: CheckResult, bar: _Progress) -> None:
    """The skipped rules that failed join the failures (status fail), each with a note of how often."""
    failed = {f.rule_id for f in result.failures}
    for rule_id, f in sorted(bar.departures.items()):
        if rule_id not in failed:
            result.failures.append(f)
        result.notes.append(f"{rule_id} (skipped) failed in {bar.departed[rule_id]} examples, each ended there; the search "
                            "went on, and its sequence is the shortest seen, not shrunk")
    result.failures.sort(key=lambda f: f.rule_id)


def _without_noops(impl: ImplSpec, machine: Machine, failure: Failure) -> Failure:
    """``failure`` without the steps that changed nothing (frees of NULL), where a replay without them fails the same rule.

    Hypothesis's shrinker can leave such a step where deleting it shifts what
    later draws choose; one replay removes them all or keeps the sequence as is.
    """
    kept = [s for s in failure.steps[:-1] if not s.noop] + failure.steps[-1:]
    if len(kept) == len(failure.steps):
        return failure
    iut: Lockstep | None = None
    try:
        iut = Lockstep(impl.factory, machine, label=impl.label)
        for step in kept:
            iut.replay_step(step)
    except ConformanceFailure as f:
        if f.rule_id == failure.rule_id and len(f.steps) < len(failure.steps):
            return Failure(f.rule_id, f.message, list(f.steps))
    except Exception:  # noqa: BLE001 - the replay did not go as the run did (a hang budget spent, a nondeterministic
        pass           # implementation): keep the sequence as shrunk
    finally:
        if iut is not None:
            iut.close()
    return failure


def _dedupe(failures: list[ConformanceFailure]) -> list[Failure]:
    by_rule: dict[str, Failure] = {}
    for f in failures:
        current = by_rule.get(f.rule_id)
        if current is None or len(f.steps) < len(current.steps):
            by_rule[f.rule_id] = Failure(f.rule_id, f.message, list(f.steps))
    return sorted(by_rule.values(), key=lambda f: f.rule_id)
