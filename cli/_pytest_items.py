"""The suite as pytest collectors and items; imported by ``pytestplugin`` only when ``--kmemspec-impl`` is given.

Each (implementation, machine) pair is a collector ``kmemspec/IMPL/MACHINE``
whose items are the rules. The suite runs once per pair, when its first rule
item runs; under xdist all items of a pair go to one worker (they are one
scope of xdist's ``loadscope`` distribution, and one ``xdist_group``), and
pairs spread over workers. Each rule item's report carries ``report.kmemspec``
(rule, status, implementation, machine, seed, examples), which xdist sends
from the worker with the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generator

import pytest

from ..harness.loader import ImplSpec, load_impl
from ..harness.report import rule_status, write_reports
from ..harness.spelling import ResolvedMachine
from ..harness.trace import render_steps
from ..properties import PROFILES, CheckResult, run_check
from ..refmodel.errors import KmemspecError
from ..refmodel.rules import RULES, Rule

GROUP_PREFIX: Final = "kmemspec/"
#: The key of the resolved machines in an xdist worker's ``workerinput``.
_WORKERINPUT_MACHINES: Final = "kmemspec_machines"


@dataclass(frozen=True)
class SuiteOptions:
    """The ``--kmemspec-*`` options' values (their names are ``pytestplugin``'s)."""

    impls: tuple[str, ...]
    machines: tuple[str, ...]
    profile: str
    seed: int | None
    isolate: bool
    timeout: float | None
    hang_budget: float | None
    report_dir: str | None

    def load(self, spec: str, machine: str | ResolvedMachine) -> ImplSpec:
        return load_impl(spec, isolate=self.isolate, timeout=self.timeout, hang_budget=self.hang_budget, machine=machine)


def configure(config: pytest.Config, options: SuiteOptions) -> None:
    """Check the implementations and machines (one-line usage errors at start-up), then register the suite's hooks."""
    try:  # fail at start-up, in one line, on a wrong path or machine
        machines = _resolve_machines(config, options)
        if not hasattr(config, "workerinput"):  # the controller checks; workers load for real later
            for spec in options.impls:
                options.load(spec, "tiny").close()
    except KmemspecError as e:
        raise pytest.UsageError(f"kmemspec: {e}") from None
    if config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") == "load":
        # --dist load spreads single items, and would run a pair's suite on every worker
        # that gets one of its rules. loadscope keeps a pair (one scope: kmemspec/IMPL/MACHINE)
        # on one worker and spreads other tests by module or class. Workers get this value
        # with the rest of the options.
        config.option.dist = "loadscope"
    config.pluginmanager.register(KmemspecSuite(options, machines), "kmemspec-suite")


def _resolve_machines(config: pytest.Config, options: SuiteOptions) -> list[ResolvedMachine]:
    """Each ``--kmemspec-machine`` read once: by the controller, whose descriptions an xdist worker reuses."""
    recorded = getattr(config, "workerinput", {}).get(_WORKERINPUT_MACHINES)
    if recorded is not None:
        return [ResolvedMachine.from_description(spec, description) for spec, description in recorded]
    return [ResolvedMachine.from_spec(spec) for spec in options.machines]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.:@" else "_" for c in text)


class KmemspecSuite:
    """The hooks of an active session: collect the pairs, hand machines to workers, put item data on reports."""

    def __init__(self, options: SuiteOptions, machines: list[ResolvedMachine]) -> None:
        self.options, self.machines = options, machines

    @pytest.hookimpl(tryfirst=True)  # before -m / -k deselect
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        for spec in self.options.impls:
            for machine in self.machines:
                name = f"{GROUP_PREFIX}{_safe(spec)}/{_safe(machine.spec)}"
                run = KmemspecRun.from_parent(session, name=name, nodeid=name, spec=spec, machine=machine, options=self.options)
                collected = run.collect()
                # Tell the reporters, as a collected file would ("collected N items").
                session.ihook.pytest_collectreport(report=pytest.CollectReport(run.nodeid, "passed", None, collected))
                items.extend(collected)

    @pytest.hookimpl(optionalhook=True)  # a hook of xdist: absent under -p no:xdist
    def pytest_configure_node(self, node: Any) -> None:
        """Send each worker the machines as read here, so every worker runs on the same ones."""
        node.workerinput[_WORKERINPUT_MACHINES] = [[m.spec, m.description] for m in self.machines]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        data = getattr(item, "kmemspec", None)
        if call.when == "call" and data is not None:
            report.kmemspec = dict(data)  # in report.__dict__: serialised with the report under xdist
        return report


class KmemspecRun(pytest.Collector):
    """One (implementation, machine) pair; runs the suite once, lazily, and holds the result."""

    def __init__(self, *, spec: str, machine: ResolvedMachine, options: SuiteOptions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.machine, self.options = spec, machine, options
        self._result: CheckResult | None = None
        self._error: str | None = None

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = []
        for r in RULES:
            item = KmemspecRule.from_parent(self, name=r.id, rule=r)
            for mark in ("kmemspec", r.level.value, r.subsystem):
                item.add_marker(mark)
            if self.config.pluginmanager.hasplugin("xdist"):
                item.add_marker(pytest.mark.xdist_group(self.name))  # for --dist loadgroup, where xdist can group by mark
            items.append(item)
        return items

    def result(self) -> CheckResult:
        if self._result is None and self._error is None:
            self._run()
        if self._error is not None:
            pytest.fail(self._error, pytrace=False)
        assert self._result is not None
        return self._result

    def _run(self) -> None:
        try:
            impl = self.options.load(self.spec, self.machine)
            self._result = run_check(impl, self.machine.machine, machine_spec=self.machine.spec,
                                     profile=PROFILES[self.options.profile], seed_value=self.options.seed, progress=None)
        except KmemspecError as e:
            self._error = f"kmemspec: {e}"
            return
        except Exception as e:  # the run itself broke: fail every item once, with the reason, instead of rerunning
            self._error = f"kmemspec: the suite could not run {self.spec} on {self.machine.spec}: {type(e).__name__}: {e}"
            return
        if self.options.report_dir:
            write_reports(self._result, Path(self.options.report_dir) / f"{self._result.label}-{self._result.machine.name}")

    def reportinfo(self) -> tuple[str, int | None, str]:
        return self.name, None, self.name


class RuleFailed(Exception):
    """A broken rule: its message, shrunk steps and how to replay it."""


class KmemspecRule(pytest.Item):
    """One rule of the catalog, judged from its pair's run."""

    def __init__(self, *, rule: Rule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule
        self.kmemspec: dict[str, Any] | None = None  # what the report carries, once the item has run

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, KmemspecRun)
        self.kmemspec = {"rule": self.rule.id, "level": self.rule.level.value, "impl": parent.spec,
                         "machine": parent.machine.spec, "status": "error"}
        result = parent.result()
        failed = {f.rule_id: f for f in result.failures}
        status = rule_status(self.rule, result, set(failed))
        self.kmemspec.update(status=status, seed=result.seed, examples=result.examples)
        if status == "fail":
            f = failed[self.rule.id]
            steps = "\n".join(f"    {line}" for line in render_steps(f.steps)) or "    (before the first operation)"
            raise RuleFailed(f"{f.message}\n\n{steps}\n\nreproduce: kmemspec check {result.impl} --machine {result.machine_spec} "
                             f"--profile {result.profile.name} --seed {result.seed}")
        if status != "pass":
            pytest.skip(f"{status} ({result.label} on {result.machine.name})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, RuleFailed):
            return f"{self.rule.id}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return self.parent.name if self.parent else "kmemspec", None, f"{self.rule.id} [{self.rule.level.value}]: {self.rule.statement}"
