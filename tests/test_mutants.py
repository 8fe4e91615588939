"""Suite strength: every seeded-bug mutant of `fast` is killed, by the rule it breaks, in a single `ci` run.

Only the kill is measured, so the runs are unshrunk (test_cli and test_process check
shrunk counterexamples); an unshrunk run stops at its first failure. The default tier
runs each mutant once, on seed 1; the conformance tier runs seeds 1..20 and holds every
mutant to a kill on each (issue 12: one CI run finds every seeded bug), as
`kmemspec mutants --seeds 20` measures it.
"""

from __future__ import annotations

import subprocess
import sys
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


#: The seed of the default tier's one run per mutant (the conformance tier runs 1..RATE_SEEDS).
SEED: Final = 1
#: Seeds of the conformance tier's kill rate: a kill on every one is >= 99% of single runs on 20 seeds.
RATE_SEEDS: Final = 20


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
    result = _run(name, SEED)
    assert _killed(name, result), (f"{name} ({mutant.description}) survived a ci run (seed {SEED}) or was caught only by "
                                   f"{sorted(f.rule_id for f in result.failures)}; `kmemspec mutants {name}` shows its kill rate")


def test_every_mutant_has_a_shortest_program():
    from kmemspec.properties.mutant_programs import SHORTEST
    assert set(SHORTEST) == set(MUTANTS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_shortest_program_shows_the_bug_and_fast_conforms(name):
    from kmemspec.properties.mutant_programs import run_program
    mutant = MUTANTS[name]
    failure = run_program(name)
    assert failure is not None and failure.rule_id in (mutant.rule_id, *mutant.also), f"{name}: {failure}"
    assert run_program(name, "fast") is None


# -- kmemspec mutants ---------------------------------------------------------------------------


def _cli(*args, cwd=None, env=None):
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
    assert dfu["shortest_lines"] == 3 and dfu["length_ratio"] == round(dfu["printed_lines"] / 3, 2) and doc["worst_length_ratio"] >= dfu["length_ratio"]
    md = (tmp_path / "mutants.md").read_text()
    assert "| `double-free-unchecked` | pages | `BUDDY-DOUBLE-FREE` | tiny | 2/2 | 100% |" in md and "## Rules no mutant targets" in md
    assert "times the shortest program written by hand" in md
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


@pytest.mark.conformance
def test_every_mutant_dies_by_its_rule_in_every_single_run():
    from kmemspec.properties.mutants import run_mutants, select
    summaries = run_mutants(select([]), range(1, RATE_SEEDS + 1), jobs=2, shrink=False)
    weaker = [f"{s.name}: {s.kills}/{s.runs}, killed by {dict(s.killed_by)}" for s in summaries if s.kills < s.runs]
    assert not weaker, f"mutants that single ci runs (seeds 1..{RATE_SEEDS}) do not always kill by their rule: {weaker}"


@pytest.mark.conformance
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_shrunk_counterexample_is_short_and_fails_when_pasted(name):
    # issue 12: no printed counterexample of a bundled mutant is longer than 20 lines, and pasted it still fails.
    from kmemspec.harness import render_test
    from kmemspec.harness.spelling import spec_import_lines
    from kmemspec.harness.trace import render_steps
    mutant = MUTANTS[name]
    result = run_check(load_impl(f"mutant:{name}"), load_machine(mutant.machine), machine_spec=mutant.machine,
                       profile=PROFILES["ci"], seed_value=SEED, progress=None)
    own = [f for f in result.failures if f.rule_id == mutant.rule_id] or [f for f in result.failures if f.rule_id in mutant.also]
    assert own, f"{name}: no failure of {mutant.rule_id} on seed {SEED}: {[f.rule_id for f in result.failures]}"
    printed = render_steps(own[0].steps)
    assert len(printed) <= 20, "\n".join(printed)
    source = render_test(own[0].steps, spec_import_lines(f"mutant:{name}"), mutant.machine, own[0].rule_id, own[0].message)
    namespace: dict[str, object] = {}
    exec(compile(source, f"repro_{name}.py", "exec"), namespace)
    test = next(v for k, v in namespace.items() if k.startswith("test_kmemspec_"))
    with pytest.raises(Exception, match=own[0].rule_id):
        test()
