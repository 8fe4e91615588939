"""Shared fixtures: paths of the test-only implementations, a fast Hypothesis profile for unit tests, and one
conformance run per (implementation, machine, seed, profile) for every test of the session that reads it.

The suite has two tiers (pyproject.toml, README "Set up and run"): ``pytest -n 2`` is the default tier, run on
every change; ``pytest -n 2 -m conformance`` is the full matrix of correct designs x preset machines x seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Protocol

import pytest
from hypothesis import HealthCheck, settings

from kmemspec.harness import load_impl
from kmemspec.properties import PROFILES, CheckResult, Profile, run_check
from kmemspec.refmodel import load_machine

IMPLS = Path(__file__).parent / "impls"
#: The seeds of the conformance tier's matrix; the default tier runs the first.
MATRIX_SEEDS: Final = (1, 2)
#: The preset machines, in the order a matrix lists them.
MACHINES: Final = ("tiny", "tiny-wmark", "tiny-highmem", "x86_64", "x86_32")

settings.register_profile("unit", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.load_profile("unit")


def impl_path(name: str) -> str:
    """``tests/impls/<name>.py:make`` as an absolute spec the loader accepts."""
    return f"{IMPLS / name}.py:make"


def why(result: CheckResult) -> str:
    """The failures of a run with their steps, as an assertion message."""
    return "\n".join(f"{f.rule_id}: {f.message}\n  " + "\n  ".join(s.render() for s in f.steps) for f in result.failures)


def matrix(designs: list[str], machines: tuple[str, ...] = MACHINES, *, group: str | None = None) -> list:
    """``(design, machine, seed)`` parameters, every combination: the first design on the first machine at the
    first seed in the default tier (in xdist group ``group``, if it shares its run), the rest marked ``conformance``.
    Nothing of the matrix is lost, only moved to the tier that ``pytest -m conformance`` runs."""
    default = (designs[0], machines[0], MATRIX_SEEDS[0])
    marks = [pytest.mark.xdist_group(group)] if group else []
    return [pytest.param(d, m, s, marks=marks if (d, m, s) == default else [pytest.mark.conformance])
            for d in designs for m in machines for s in MATRIX_SEEDS]


def tiered(request: pytest.FixtureRequest, profile: Profile) -> Profile:
    """``profile`` in the conformance tier; ``smoke`` in the default tier, whose runs show the wiring (an adapter, a
    transport) and leave the full exploration to ``pytest -m conformance``."""
    return profile if request.node.get_closest_marker("conformance") else PROFILES["smoke"]


def matrix_id(value: object) -> str:
    """Test ids of a matrix: the design's factory or file stem, the machine, ``seed<N>``."""
    if isinstance(value, int):
        return f"seed{value}"
    spec = str(value)
    if spec.endswith(":make") and "/" in spec:
        return Path(spec.rsplit(":", 1)[0]).stem
    return spec.rsplit(":", 1)[1] if "/" in spec else spec


class Checked(Protocol):
    def __call__(self, spec: str, machine: str = "tiny", *, seed: int = 1, profile: Profile = PROFILES["ci"],
                 isolate: bool = False) -> CheckResult: ...


@pytest.fixture(scope="session")
def checked() -> Checked:
    """``checked(spec, machine, seed=, profile=, isolate=)``: the run's result, run once per session (per xdist
    worker: tests that share runs carry one ``xdist_group`` so that they meet on one worker).

    Only for tests that read the result; a test that changes the implementation or the run's limits runs its own.
    """
    runs: dict[tuple[str, str, int, Profile, bool], CheckResult] = {}

    def run(spec: str, machine: str = "tiny", *, seed: int = 1, profile: Profile = PROFILES["ci"],
            isolate: bool = False) -> CheckResult:
        key = (spec, machine, seed, profile, isolate)
        if key not in runs:
            runs[key] = run_check(load_impl(spec, isolate=isolate, machine=machine), load_machine(machine),
                                  machine_spec=machine, profile=profile, seed_value=seed, progress=None)
        return runs[key]

    return run


@pytest.fixture
def tmp_reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


def free_starts(area, order: int) -> list[int]:
    """The first PFNs of a model zone's free order-``order`` blocks, untouched runs expanded (small machines)."""
    return sorted(pfn + (i << k) for pfn, k, n in area.rows() if k == order for i in range(n))
