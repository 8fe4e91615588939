"""The pytest plugin: the kmemspec conformance suite inside your own pytest session.

    pytest --kmemspec-impl mypkg.alloc:make [--kmemspec-machine x86_64] [-n auto] [-m safety]

Registered through the ``pytest11`` entry point, so it is loaded into every
pytest session of every project that has kmemspec installed; it is thin for
that reason, as Hypothesis's ``_hypothesis_pytestplugin`` is. It adds its
options (one group, names below) and returns: nothing of kmemspec (the rule
catalog, Hypothesis, the state machines, the harness) is imported unless
``--kmemspec-impl`` is given; then it registers the rule markers. Then ``kmemspec.cli._pytest_items``
checks the options and registers the plugin that collects the suite: each
(implementation, machine) pair becomes a collector ``kmemspec/IMPL/MACHINE``
whose items are the rules, marked with their level and subsystem
(``-m safety``, ``-m "pages and not policy"``).
"""

from __future__ import annotations

from typing import Final

import pytest

IMPL_OPTION: Final = "--kmemspec-impl"
MACHINE_OPTION: Final = "--kmemspec-machine"
PROFILE_OPTION: Final = "--kmemspec-profile"
SEED_OPTION: Final = "--kmemspec-seed"
ISOLATE_OPTION: Final = "--kmemspec-isolate"
TIMEOUT_OPTION: Final = "--kmemspec-timeout"
HANG_BUDGET_OPTION: Final = "--kmemspec-hang-budget"
REPORT_DIR_OPTION: Final = "--kmemspec-report-dir"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kmemspec", "kmemspec conformance suite")
    group.addoption(IMPL_OPTION, action="append", default=[], metavar="IMPL",
                    help="run the kmemspec suite on IMPL (MODULE:FACTORY, file.py:FACTORY, c:lib.so, exec:CMD, fast, ...); repeatable")
    group.addoption(MACHINE_OPTION, action="append", default=[], metavar="M", help="machine preset or file (default tiny); repeatable")
    group.addoption(PROFILE_OPTION, default="ci", metavar="P", help="smoke, ci (default), dev or campaign")
    group.addoption(SEED_OPTION, type=int, default=None, metavar="N", help="Hypothesis seed (default: random, shown in failures)")
    group.addoption(ISOLATE_OPTION, action="store_true", help="run each implementation in a child process")
    group.addoption(TIMEOUT_OPTION, type=float, default=None, metavar="S", help="per-request timeout for child processes (default 10)")
    group.addoption(HANG_BUDGET_OPTION, type=float, default=None, metavar="S", help="stop shrinking once timeouts cost this long (default 60)")
    group.addoption(REPORT_DIR_OPTION, default=None, metavar="DIR", help="also write kmemspec's reports under DIR/<impl>-<machine>")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption(IMPL_OPTION):
        return  # a session that does not run the suite imports nothing of kmemspec, not even the rule catalog
    from ..refmodel.rules import RULES

    config.addinivalue_line("markers", "kmemspec: an item of the kmemspec conformance suite")
    for name in sorted({r.level.value for r in RULES} | {r.subsystem for r in RULES}):
        config.addinivalue_line("markers", f"{name}: kmemspec rules of this level or subsystem")
    from . import _pytest_items

    profile = config.getoption(PROFILE_OPTION)
    if profile not in _pytest_items.PROFILES:
        raise pytest.UsageError(f"{PROFILE_OPTION} {profile!r} does not exist; choose one of {', '.join(_pytest_items.PROFILES)}")
    _pytest_items.configure(config, _pytest_items.SuiteOptions(
        impls=tuple(config.getoption(IMPL_OPTION)), machines=tuple(config.getoption(MACHINE_OPTION) or ["tiny"]),
        profile=profile, seed=config.getoption(SEED_OPTION), isolate=config.getoption(ISOLATE_OPTION),
        timeout=config.getoption(TIMEOUT_OPTION), hang_budget=config.getoption(HANG_BUDGET_OPTION),
        report_dir=config.getoption(REPORT_DIR_OPTION),
    ))
