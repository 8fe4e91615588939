"""Suite strength: every seeded-bug mutant of `fast` is killed, by the rule it breaks, within three `ci` runs."""

import pytest

from kmemspec.harness import load_impl
from kmemspec.harness.impls.mutants import MUTANTS
from kmemspec.properties import PROFILES, run_check
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


#: A mutant must die within this many `ci` runs. Most die in the first; what one seed misses, the next finds
#: (kmemspec check draws a fresh seed per run, so a CI pipeline sees the same odds). Shrinking is off here:
#: only the kill is measured; test_cli and test_process check shrunk counterexamples.
SEEDS = (20261125, 1, 2)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_killed_by_its_rule(name):
    mutant = MUTANTS[name]
    seen: set[str] = set()
    for seed in SEEDS:
        result = run_check(load_impl(f"mutant:{name}"), load_machine(mutant.machine), machine_spec=mutant.machine,
                           profile=PROFILES["ci"], seed_value=seed, progress=None, shrink=False)
        rules = {f.rule_id: f for f in result.failures}
        seen |= set(rules)
        for rule_id in (mutant.rule_id, *mutant.also):
            if rule_id in rules:
                assert rules[rule_id].steps, "the failure carries its steps"
                return
    pytest.fail(f"{name} ({mutant.description}) survived {len(SEEDS)} ci runs or was caught only by {sorted(seen)}")
