"""Suite strength: every seeded-bug mutant of `fast` is killed, by the rule it breaks, in the `ci` profile."""

import pytest

from kmemspec.harness import load_impl
from kmemspec.harness.impls.mutants import MUTANTS
from kmemspec.properties import PROFILES, run_check
from kmemspec.refmodel import load_machine
from kmemspec.refmodel.rules import RULES_BY_ID


def test_there_are_enough_mutants_and_their_rules_exist():
    assert len(MUTANTS) >= 8
    for m in MUTANTS.values():
        assert m.rule_id in RULES_BY_ID, m


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_killed_by_its_rule(name):
    mutant = MUTANTS[name]
    result = run_check(load_impl(f"mutant:{name}"), load_machine(mutant.machine), machine_spec=mutant.machine,
                       profile=PROFILES["ci"], seed_value=20261125, progress=None)
    rules = {f.rule_id: f for f in result.failures}
    assert mutant.rule_id in rules, f"{name} ({mutant.description}) survived or was caught only by {sorted(rules)}"
    assert rules[mutant.rule_id].steps, "the failure carries its shrunk steps"
