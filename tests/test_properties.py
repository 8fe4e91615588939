"""The suite is composed per implementation from registered rule sets; rule IDs in properties are catalog IDs."""

import inspect
from types import SimpleNamespace

import pytest
from hypothesis.stateful import rule

from kmemspec.harness import load_impl
from kmemspec.harness.protocol import CAPABILITY_METHODS
from kmemspec.properties import PageStateMachine, Profile, RuleSet, Target, register_rule_set, run_check, state_machine_for
from kmemspec.properties import _subsystems
from kmemspec.properties.machines._base import claims, rule_id
from kmemspec.properties.machines.kmalloc import KmallocRules
from kmemspec.properties.machines.pages import PageRules
from kmemspec.properties.machines.slab import SlabRules
from kmemspec.refmodel import load_machine
from kmemspec.refmodel.errors import InvalidDefinition
from kmemspec.refmodel.gfp import GFP_KERNEL


def _target(capabilities, claims=frozenset()):
    return Target(load_impl("fast").factory, "t", load_machine("tiny"), frozenset(capabilities), frozenset(claims))


def _rules(cls):
    return {name for name, f in inspect.getmembers(cls) if hasattr(f, "hypothesis_stateful_rule")}


def test_a_pages_only_implementation_is_never_drawn_a_slab_or_kmalloc_rule():
    cls = state_machine_for(_target({"pages"}))
    rules = _rules(cls)
    assert rules == _rules(PageRules) == _rules(PageStateMachine)
    for name in rules:
        assert not name.startswith(("kmalloc", "kmem_cache", "kfree", "kzalloc", "ksize", "slab", "clobber")), name
    assert not rules & (_rules(KmallocRules) | _rules(SlabRules))
    assert "get_free_pages" not in rules and "check_free_area" not in rules  # capabilities it did not declare


def test_every_registered_rule_is_drawn_for_an_implementation_with_every_capability():
    cls = state_machine_for(_target(CAPABILITY_METHODS))
    assert _rules(cls) == set().union(*map(_rules, _subsystems.RULE_SETS))
    assert len(_rules(cls)) == 52  # the 40 rules before the suite was split (none lost); check_zone_free and eleven targeted rules since


def test_a_rule_set_needing_two_capabilities_is_drawn_only_with_both():
    assert "kfree_page_block" in _rules(state_machine_for(_target({"pages", "kmalloc", "get_free_pages"})))
    assert "kfree_page_block" not in _rules(state_machine_for(_target({"pages", "kmalloc"})))
    assert "free_pages_of_slab_block" not in _rules(state_machine_for(_target({"pages", "kmalloc", "slab"})))


def test_claim_guarded_rules_stay_and_check_the_claim():
    cls = state_machine_for(_target({"pages"}))
    assert "double_free" in _rules(cls)  # claims are per implementation: the precondition decides
    (pre,) = cls.double_free.hypothesis_stateful_rule.preconditions
    assert not pre(SimpleNamespace(target=_target({"pages"})))
    assert pre(SimpleNamespace(target=_target({"pages"}, {"BUDDY-DOUBLE-FREE"})))


def test_a_misspelt_rule_id_fails_at_import_and_says_what_to_do():
    with pytest.raises(InvalidDefinition, match=r"'BUDDY-DUBLE-FREE' .* not in the catalog; did you mean 'BUDDY-DOUBLE-FREE'\? `kmemspec rules`"):
        claims("BUDDY-DUBLE-FREE")
    with pytest.raises(InvalidDefinition, match="not in the catalog"):
        rule_id("SLAB-NO-SUCH-RULE")
    with pytest.raises(InvalidDefinition, match="'BUDDY-ALIGN' is not claimable"):
        claims("BUDDY-ALIGN")  # a safety rule binds everyone: a rule guarded by its claim would never run


def test_a_misspelt_claim_in_a_rule_set_fails_when_the_class_is_defined():
    source = (
        "from hypothesis.stateful import precondition, rule\n"
        "class Typo(RuleSet):\n"
        "    @precondition(claims('SLAB-DOUBLEFREE'))\n"
        "    @rule()\n"
        "    def free_twice_again(self):\n"
        "        pass\n"
    )
    with pytest.raises(InvalidDefinition, match="did you mean 'SLAB-DOUBLE-FREE'"):
        exec(source, {"RuleSet": RuleSet, "claims": claims})


_ran: list[str] = []


class _Extra(RuleSet):
    """A third party's rule set: one rule on the page allocator."""

    @rule()
    def alloc_one_page_and_free_it(self):
        _ran.append(self.target.label)
        pfn = self.iut.alloc_pages(int(GFP_KERNEL), 0)
        if pfn is not None:
            self.iut.free_pages(pfn, 0)


def test_a_rule_set_registered_from_outside_is_composed_and_run(monkeypatch):
    monkeypatch.setattr(_subsystems, "RULE_SETS", dict(_subsystems.RULE_SETS))
    register_rule_set("pages", _Extra)
    assert "alloc_one_page_and_free_it" in _rules(state_machine_for(_target({"pages"})))
    result = run_check(load_impl("fast"), load_machine("tiny"), machine_spec="tiny", profile=Profile("t", 10, 20, "test"),
                       seed_value=1, progress=None)
    assert result.conforming and _ran


@pytest.mark.parametrize("capabilities,rule_set,text", [
    ("vmalloc", _Extra, r"unknown capabilities \['vmalloc'\]; known:"),
    ((), _Extra, "registered for no capability"),
    ("pages", int, "is not a rule set; subclass kmemspec.properties.RuleSet"),
    ("pages", PageRules, "registered already"),
    ("pages", type("Again", (RuleSet,), {"free": PageRules.free}), r"defines rules \['free'\], which rule set PageRules has already"),
    ("pages", type("Empty", (RuleSet,), {}), "has no @rule methods"),
])
def test_a_broken_registration_fails_and_says_why(monkeypatch, capabilities, rule_set, text):
    monkeypatch.setattr(_subsystems, "RULE_SETS", dict(_subsystems.RULE_SETS))
    with pytest.raises(InvalidDefinition, match=text):
        register_rule_set(capabilities, rule_set)


def test_strategies_keep_their_import_path():
    import kmemspec.properties.strategies as strategies
    from kmemspec.properties.strategies import gfp_masks, kmalloc_sizes, orders, slab_flags

    assert all(getattr(strategies, name) is not None for name in strategies.__all__)
    assert {gfp_masks, kmalloc_sizes, orders, slab_flags} <= {getattr(strategies, n) for n in strategies.__all__}
