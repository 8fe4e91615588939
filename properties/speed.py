"""The suite's speed against its floor: steps per second of the suite on ``fast`` and of a state machine of as many
rules that do nothing, measured in one ``kmemspec bench`` run (docs/bench.md)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hseed
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, rule

from ..harness.loader import load_impl
from ..harness.protocol import Env
from ..refmodel.presets import load_machine
from ._subsystems import rule_names, state_machine_for
from .machines import Target
from .runner import PROFILES, run_check


def floor_table(profile_name: str = "ci", seed: int = 1) -> list[str]:
    """The suite's steps per second on ``fast`` (tiny) against a state machine of as many rules that do nothing."""
    profile = PROFILES[profile_name]
    tiny = load_machine("tiny")
    impl = load_impl("fast")
    probe = impl.factory(tiny, Env())
    target = Target(impl.factory, impl.label, tiny, frozenset(probe.capabilities), frozenset(probe.claims))
    n_rules = len(rule_names(state_machine_for(target)))
    calls = [0]

    def nothing(self: object) -> None:
        calls[0] += 1

    empty = type("Empty", (RuleBasedStateMachine,), {f"r{i}": rule()(nothing) for i in range(n_rules)})
    test = get_state_machine_test(empty, settings=settings(max_examples=profile.max_examples, stateful_step_count=profile.step_count,
                                                           deadline=None, database=None, verbosity=Verbosity.quiet,
                                                           suppress_health_check=list(HealthCheck), phases=[Phase.generate]))
    t0 = time.perf_counter()
    hseed(seed)(test)()
    floor = calls[0] / (time.perf_counter() - t0)
    result = run_check(impl, tiny, machine_spec="tiny", profile=profile, seed_value=seed, progress=None)
    suite = result.steps / result.seconds
    return [f"## The suite against its floor (profile {profile_name}, seed {seed}, tiny)", "",
            "| state machine | steps | steps per second |", "|---|---:|---:|",
            f"| {n_rules} rules that do nothing | {calls[0]} | {floor:,.0f} |",
            f"| the suite on fast | {result.steps} | {suite:,.0f} |", "",
            f"The suite runs at {suite / floor:.0%} of the floor."]
