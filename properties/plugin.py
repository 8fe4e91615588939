"""The pytest plugin: the conformance suite inside your own pytest session.

    pytest --kmemspec-impl mypkg.alloc:make [--kmemspec-machine x86_64] [-n auto] [-m safety]

Registered through the ``pytest11`` entry point; inert unless
``--kmemspec-impl`` is given. Each (implementation, machine) pair becomes a
collector ``kmemspec/IMPL/MACHINE`` whose items are the rules, marked with
their level and subsystem (``-m safety``, ``-m "pages and not policy"``).
The suite runs once per pair, when its first rule item runs; under xdist all
items of a pair go to one worker, and pairs spread over workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_GROUP_PREFIX = "kmemspec/"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("kmemspec", "kmemspec conformance suite")
    g.addoption("--kmemspec-impl", action="append", default=[], metavar="IMPL",
                help="run the kmemspec suite on IMPL (MODULE:FACTORY, file.py:FACTORY, c:lib.so, exec:CMD, fast, ...); repeatable")
    g.addoption("--kmemspec-machine", action="append", default=[], metavar="M", help="machine preset or file (default tiny); repeatable")
    g.addoption("--kmemspec-profile", default="ci", metavar="P", help="ci (default), dev or campaign")
    g.addoption("--kmemspec-seed", type=int, default=None, metavar="N", help="Hypothesis seed (default: random, shown in failures)")
    g.addoption("--kmemspec-isolate", action="store_true", help="run each implementation in a child process")
    g.addoption("--kmemspec-timeout", type=float, default=None, metavar="S", help="per-request timeout for child processes (default 10)")
    g.addoption("--kmemspec-hang-budget", type=float, default=None, metavar="S", help="stop shrinking once timeouts cost this long (default 60)")
    g.addoption("--kmemspec-report-dir", default=None, metavar="DIR", help="also write kmemspec's reports under DIR/<impl>-<machine>")


def pytest_configure(config: pytest.Config) -> None:
    from ..refmodel.rules import RULES

    config.addinivalue_line("markers", "kmemspec: an item of the kmemspec conformance suite")
    for name in sorted({r.level.value for r in RULES} | {r.subsystem for r in RULES}):
        config.addinivalue_line("markers", f"{name}: kmemspec rules of this level or subsystem")
    if not config.getoption("kmemspec_impl"):
        return
    from ..harness.loader import load_impl
    from ..refmodel.errors import KmemspecError
    from ..refmodel.machine import load_machine
    from .runner import PROFILES

    if config.getoption("kmemspec_profile") not in PROFILES:
        raise pytest.UsageError(f"--kmemspec-profile {config.getoption('kmemspec_profile')!r} does not exist; choose one of {', '.join(PROFILES)}")
    try:  # fail at start-up, in one line, on a wrong path or machine
        for machine in _machines(config):
            load_machine(machine)
        if not hasattr(config, "workerinput"):  # the controller checks; workers load for real later
            for spec in config.getoption("kmemspec_impl"):
                _load(config, spec, "tiny").close()
    except KmemspecError as e:
        raise pytest.UsageError(f"kmemspec: {e}") from None


def _machines(config: pytest.Config) -> list[str]:
    return config.getoption("kmemspec_machine") or ["tiny"]


def _load(config: pytest.Config, spec: str, machine: str) -> Any:
    from ..harness.loader import load_impl

    return load_impl(spec, isolate=config.getoption("kmemspec_isolate"), timeout=config.getoption("kmemspec_timeout"),
                     hang_budget=config.getoption("kmemspec_hang_budget"), machine=machine)


@pytest.hookimpl(tryfirst=True)  # before -m / -k deselect
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("kmemspec_impl"):
        return
    for spec in config.getoption("kmemspec_impl"):
        for machine in _machines(config):
            name = f"{_GROUP_PREFIX}{_safe(spec)}/{_safe(machine)}"
            run = KmemspecRun.from_parent(session, name=name, nodeid=name, spec=spec, machine_spec=machine)
            collected = run.collect()
            # Tell the reporters, as a collected file would ("collected N items").
            session.ihook.pytest_collectreport(report=pytest.CollectReport(run.nodeid, "passed", None, collected))
            items.extend(collected)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.:@" else "_" for c in text)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # a hook of xdist: absent under -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n``, keep each (implementation, machine) on one worker so the suite runs once for it."""
    if not config.getoption("kmemspec_impl") or config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class _PairScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            # Rule items of one pair share a scope; every other test is its own, as with --dist load.
            return nodeid.rsplit("::", 1)[0] if nodeid.startswith(_GROUP_PREFIX) else nodeid

    return _PairScheduling(config, log)


class KmemspecRun(pytest.Collector):
    """One (implementation, machine) pair; runs the suite once, lazily, and holds the result."""

    def __init__(self, *, spec: str, machine_spec: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.machine_spec = spec, machine_spec
        self._result: Any = None
        self._error: str | None = None

    def collect(self) -> list[pytest.Item]:
        from ..refmodel.rules import RULES

        items = []
        for r in RULES:
            item = KmemspecRule.from_parent(self, name=r.id, rule=r)
            for mark in ("kmemspec", r.level.value, r.subsystem):
                item.add_marker(mark)
            if self.config.pluginmanager.hasplugin("xdist"):
                item.add_marker(pytest.mark.xdist_group(self.name))  # --dist loadgroup keeps a pair on one worker too
            items.append(item)
        return items

    def result(self) -> Any:
        if self._result is None and self._error is None:
            self._run()
        if self._error is not None:
            pytest.fail(self._error, pytrace=False)
        return self._result

    def _run(self) -> None:
        from ..harness.report import write_reports
        from ..refmodel.errors import KmemspecError
        from ..refmodel.machine import load_machine
        from .runner import PROFILES, run_check

        config = self.config
        try:
            impl = _load(config, self.spec, self.machine_spec)
            self._result = run_check(impl, load_machine(self.machine_spec), machine_spec=self.machine_spec,
                                     profile=PROFILES[config.getoption("kmemspec_profile")],
                                     seed_value=config.getoption("kmemspec_seed"), progress=None)
        except KmemspecError as e:
            self._error = f"kmemspec: {e}"
            return
        except Exception as e:  # the run itself broke: fail every item once, with the reason, instead of rerunning
            self._error = f"kmemspec: the suite could not run {self.spec} on {self.machine_spec}: {type(e).__name__}: {e}"
            return
        out = config.getoption("kmemspec_report_dir")
        if out:
            write_reports(self._result, Path(out) / f"{self._result.label}-{self._result.machine.name}")

    def reportinfo(self) -> tuple[str, int | None, str]:
        return self.name, None, self.name


class RuleFailed(Exception):
    """A broken rule: its message, shrunk steps and how to replay it."""


class KmemspecRule(pytest.Item):
    """One rule of the catalog, judged from its pair's run."""

    def __init__(self, *, rule: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule

    def runtest(self) -> None:
        from ..harness.report import rule_status

        parent = self.parent
        assert isinstance(parent, KmemspecRun)
        result = parent.result()
        failed = {f.rule_id: f for f in result.failures}
        status = rule_status(self.rule, result, set(failed))
        if status == "fail":
            f = failed[self.rule.id]
            steps = "\n".join(f"    {s.render()}" for s in f.steps) or "    (before the first operation)"
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
