"""Suite strength: every seeded-bug mutant of `fast` is killed, by the rule it breaks, in a `ci` run.

Only the kill is measured, so the runs are unshrunk (test_cli and test_process check
shrunk counterexamples); an unshrunk run stops at its first failure. Each mutant runs
first with the seed that kills it soonest (KILL_SEEDS); should that seed stop killing it
(a change of the strategies draws other sequences), the seeds of the old three-run rule
follow, with a warning to re-measure the table:

    python tests/test_mutants.py            # prints a new KILL_SEEDS
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Final

import pytest

from kmemspec.harness import load_impl
from kmemspec.harness.impls.mutants import MUTANTS
from kmemspec.properties import PROFILES, CheckResult, run_check
from kmemspec.refmodel import load_machine
from kmemspec.refmodel.rules import RULES, RULES_BY_ID


def test_every_allocator_rule_has_a_mutant_that_breaks_it():
    # The protocol rules (IUT-*) are proven with broken implementations instead (tests/impls/broken.py, badproc.py).
    targeted = {m.rule_id for m in MUTANTS.values()}
    missing = [r.id for r in RULES if r.subsystem in ("pages", "kmalloc", "slab", "context") and r.id not in targeted]
    assert not missing, f"rules no mutant breaks: {missing}"


def test_there_are_enough_mutants_and_their_rules_exist():
    assert len(MUTANTS) >= 8
    for m in MUTANTS.values():
        assert m.rule_id in RULES_BY_ID, m


#: A seed whose `ci` run kills each mutant by its rule, unshrunk: ``python tests/test_mutants.py`` measures the one
#: of MEASURED_SEEDS that kills in the fewest steps. Re-measured after issue 10 recomposed the suite (which changes
#: what each seed draws): there the first killing seed was taken, the recorded one tried first.
KILL_SEEDS: Final[dict[str, int]] = {
    "array-overflow-wraps": 1,
    "bad-free-ignored": 8,
    "boot-keeps-holes": 4,
    "boot-keeps-reserved": 4,
    "boot-misaligned": 5,
    "bucket-too-small": 8,
    "cache-create-no-might-sleep": 1,
    "cross-zone-merge": 20261125,
    "destroy-busy-frees": 2,
    "dma-cache-ignored": 16,
    "double-free-unchecked": 7,
    "emptiest-first": 20261125,
    "free-addr-bad-ignored": 7,
    "free-addr-null-unchecked": 4,
    "free-area-skips-max": 1,
    "free-order-trusted": 4,
    "free-pointer-in-neighbour": 1,
    "free-pointer-in-poison": 1,
    "getfree-keeps-highmem": 5,
    "gfp-bug-only-on-new-slab": 8,
    "hwcache-align-ignored": 29,
    "interior-free-accepted": 8,
    "interior-free-ignored": 4,
    "krealloc-move-no-might-sleep": 13,
    "krealloc-no-copy": 17,
    "ksize-is-stride": 15,
    "ksize-zero-size-ptr": 7,
    "kzalloc-not-zeroed": 4,
    "large-kept-after-page-free": 8,
    "large-order-clamped": 4,
    "link-past-block": 4,
    "max-order-exclusive": 5,
    "merge-debug-caches": 5,
    "merge-head-from-buddy": 11,
    "might-sleep-missing": 20261125,
    "no-left-red-zone": 8,
    "no-order-fallback": 11,
    "no-poison-on-free": 1,
    "nofail-gives-up": 7,
    "on-slab-header": 8,
    "order-clamped": 5,
    "reclaim-always-sleeps": 4,
    "reclaim-before-min-retry": 11,
    "refill-with-gfp-kernel": 1,
    "reserve-ignores-lowmem": 3,
    "shrink-keeps-empty": 1,
    "size-class-no-96": 20261125,
    "slab-double-free-unchecked": 3,
    "slab-page-free-accepted": 5,
    "slab-pages-from-highmem": 7,
    "slabs-omit-large": 7,
    "stride-too-small": 9,
    "top-merge-loses-a-page": 1,
    "unlink-forgotten": 4,
    "validate-no-restore": 8,
    "validate-red-zones-only": 25,
    "wrong-cache-unchecked": 1,
    "zero-head-only": 3,
    "zero-size-null": 20261125,
    "zone-bad-partial": 6,
    "zonelist-unfiltered": 1,
}
#: What a mutant falls back to when its KILL_SEEDS entry no longer kills it: it must still die
#: within these `ci` runs (kmemspec check draws a fresh seed per run, so a CI pipeline sees the same odds).
SEEDS: Final = (20261125, 1, 2)
#: The candidates the table is measured over.
MEASURED_SEEDS: Final = (*SEEDS, *range(3, 41))


class StaleKillSeed(UserWarning):
    """A mutant died, but not on its KILL_SEEDS seed: the table costs time; re-measure it."""


def test_every_mutant_has_a_kill_seed():
    assert set(KILL_SEEDS) == set(MUTANTS), "run: python tests/test_mutants.py, and paste its KILL_SEEDS here"


def _run(name: str, seed: int) -> CheckResult:
    mutant = MUTANTS[name]
    return run_check(load_impl(f"mutant:{name}"), load_machine(mutant.machine), machine_spec=mutant.machine,
                     profile=PROFILES["ci"], seed_value=seed, progress=None, shrink=False)


def _killed(name: str, result: CheckResult) -> bool:
    """Killed by its own rule (or a rule the same slip breaks as directly), with the steps that show it."""
    mutant = MUTANTS[name]
    rules = {f.rule_id: f for f in result.failures}
    return any(rule_id in rules and rules[rule_id].steps for rule_id in (mutant.rule_id, *mutant.also))


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_killed_by_its_rule(name):
    mutant = MUTANTS[name]
    first = KILL_SEEDS.get(name, SEEDS[0])
    seen: set[str] = set()
    for seed in (first, *(s for s in SEEDS if s != first)):
        result = _run(name, seed)
        seen |= {f.rule_id for f in result.failures}
        if _killed(name, result):
            if seed != first:
                warnings.warn(StaleKillSeed(f"mutant {name} survived its KILL_SEEDS seed {first} and died on seed {seed}; "
                                            "re-measure the table: python tests/test_mutants.py"))
            return
    pytest.fail(f"{name} ({mutant.description}) survived seeds {first} and {SEEDS} of ci runs "
                f"or was caught only by {sorted(seen)}")


# -- kmemspec mutants ---------------------------------------------------------------------------


def _cli(*args, cwd=None, env=None):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "kmemspec.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_kmemspec_mutants_writes_the_tables_and_plots(tmp_path):
    import json
    p = _cli("mutants", "double-free-unchecked", "zero-size-null", "--seeds", "2", "--jobs", "1", "--report-dir", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads((tmp_path / "mutants.json").read_text())
    rows = {m["name"]: m for m in doc["mutants"]}
    assert set(rows) == {"double-free-unchecked", "zero-size-null"} and doc["seeds"] == [1, 2]
    dfu = rows["double-free-unchecked"]
    assert dfu["runs"] == 2 and dfu["kills"] == 2 and dfu["killed_by"]["BUDDY-DOUBLE-FREE"] == 2 and dfu["killed_by_target"]
    assert 1 <= dfu["printed_lines"] <= 20 and dfu["shrunk_rule"] == "BUDDY-DOUBLE-FREE"
    md = (tmp_path / "mutants.md").read_text()
    assert "| `double-free-unchecked` | pages | `BUDDY-DOUBLE-FREE` | tiny | 2/2 | 100% |" in md and "## Rules no mutant targets" in md
    assert all((tmp_path / f"{stem}.{ext}").stat().st_size > 0 for stem in ("kill_matrix", "time_to_kill") for ext in ("png", "svg"))
    assert "2 of 2 mutants killed by their own rule" in p.stdout


def test_kmemspec_mutants_without_matplotlib_still_writes_the_tables(tmp_path):
    import os
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass _No:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'matplotlib' or name.startswith('matplotlib.'):\n            raise ImportError('no matplotlib here')\n"
        "sys.meta_path.insert(0, _No())\n")
    env = {**os.environ, "PYTHONPATH": str(blocker) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = _cli("mutants", "double-free-unchecked", "--seeds", "1", "--no-shrink", "--report-dir", str(tmp_path / "r"), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no plots: pip install 'kmemspec[plots]'" in p.stdout
    assert (tmp_path / "r" / "mutants.md").exists() and not (tmp_path / "r" / "kill_matrix.png").exists()


def test_kmemspec_mutants_names_what_it_does_not_know():
    p = _cli("mutants", "no-such-bug")
    assert p.returncode == 2 and "no mutant or subsystem 'no-such-bug'" in p.stderr, p.stderr


# -- the kill rate of single runs (issue 12: one CI run finds every seeded bug) ------------------

#: Runs of seeds 1..20 (one unshrunk `ci` run each) in which each mutant died by its own rule, as
#: `kmemspec mutants --seeds 20` measured them (docs/bench.md). Runs are deterministic per seed, so the
#: conformance tier holds every mutant to its number; the goal is 20 of 20 for all of them.
KILLS_OF_20: Final[dict[str, int]] = {
    "array-overflow-wraps": 20,
    "bad-free-ignored": 20,
    "boot-keeps-holes": 20,
    "boot-keeps-reserved": 20,
    "boot-misaligned": 20,
    "bucket-too-small": 15,
    "cache-create-no-might-sleep": 20,
    "cross-zone-merge": 19,
    "destroy-busy-frees": 19,
    "dma-cache-ignored": 18,
    "double-free-unchecked": 20,
    "emptiest-first": 20,
    "free-addr-bad-ignored": 20,
    "free-addr-null-unchecked": 20,
    "free-area-skips-max": 20,
    "free-order-trusted": 20,
    "free-pointer-in-neighbour": 19,
    "free-pointer-in-poison": 20,
    "getfree-keeps-highmem": 20,
    "gfp-bug-only-on-new-slab": 18,
    "hwcache-align-ignored": 20,
    "interior-free-accepted": 20,
    "interior-free-ignored": 20,
    "krealloc-move-no-might-sleep": 20,
    "krealloc-no-copy": 20,
    "ksize-is-stride": 20,
    "ksize-zero-size-ptr": 20,
    "kzalloc-not-zeroed": 20,
    "large-kept-after-page-free": 20,
    "large-order-clamped": 20,
    "link-past-block": 20,
    "max-order-exclusive": 20,
    "merge-debug-caches": 19,
    "merge-head-from-buddy": 18,
    "might-sleep-missing": 20,
    "no-left-red-zone": 19,
    "no-order-fallback": 20,
    "no-poison-on-free": 20,
    "nofail-gives-up": 20,
    "on-slab-header": 20,
    "order-clamped": 20,
    "reclaim-always-sleeps": 20,
    "reclaim-before-min-retry": 14,
    "refill-with-gfp-kernel": 20,
    "reserve-ignores-lowmem": 20,
    "shrink-keeps-empty": 20,
    "size-class-no-96": 18,
    "slab-double-free-unchecked": 20,
    "slab-page-free-accepted": 19,
    "slab-pages-from-highmem": 20,
    "slabs-omit-large": 20,
    "stride-too-small": 19,
    "top-merge-loses-a-page": 20,
    "unlink-forgotten": 20,
    "validate-no-restore": 20,
    "validate-red-zones-only": 16,
    "wrong-cache-unchecked": 18,
    "zero-head-only": 20,
    "zero-size-null": 20,
    "zone-bad-partial": 20,
    "zonelist-unfiltered": 20,
}


def test_every_mutant_has_a_measured_kill_rate():
    assert set(KILLS_OF_20) == set(MUTANTS), "run: kmemspec mutants --seeds 20, and copy each mutant's kills here"


@pytest.mark.conformance
def test_no_mutant_dies_in_fewer_single_runs_than_measured():
    from kmemspec.properties.mutants import run_mutants, select
    summaries = run_mutants(select([]), range(1, 21), jobs=2, shrink=False)
    weaker = [f"{s.name}: {s.kills}/20, measured {KILLS_OF_20[s.name]}/20" for s in summaries if s.kills < KILLS_OF_20[s.name]]
    assert not weaker, f"mutants that single ci runs kill less often than measured: {weaker}"


def measure(names: list[str]) -> dict[str, int]:
    """For each mutant, the candidate seed that kills it in the fewest steps (ties: fewest examples)."""
    table: dict[str, int] = {}
    for name in names:
        kills = []
        for seed in MEASURED_SEEDS:
            started = time.monotonic()
            result = _run(name, seed)
            if _killed(name, result):
                kills.append((result.steps, result.examples, seed))
            print(f"# {name} seed {seed}: {'killed' if _killed(name, result) else 'survived'} after "
                  f"{result.examples} examples, {result.steps} steps, {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
        if not kills:
            raise SystemExit(f"{name} survives every seed of {MEASURED_SEEDS}")
        table[name] = min(kills)[2]
    return table


if __name__ == "__main__":
    found = measure(sys.argv[1:] or sorted(MUTANTS))
    print("KILL_SEEDS: Final[dict[str, int]] = {")
    for key, value in sorted(found.items()):
        print(f'    "{key}": {value},')
    print("}")
