"""The lockstep checker: what happens with misuse, crashes, wrong types, false reports and sleeps."""

import pytest

from kmemspec.harness import Lockstep, load_impl
from kmemspec.refmodel import ConformanceFailure, Context
from kmemspec.refmodel.errors import InvalidArgument, InvalidDefinition
from kmemspec.refmodel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL

from conftest import IMPLS


def broken(name):
    return load_impl(f"{IMPLS / 'broken.py'}:{name}").factory


def reference():
    return load_impl("reference").factory


def test_valid_sequence_and_names():
    iut = Lockstep(reference(), "tiny")
    pfn = iut.alloc_pages(GFP_KERNEL | GFP.DMA, 2)
    iut.free_pages(pfn, 2)
    assert [s.render() for s in iut.trace] == [
        "pfn_0 = iut.alloc_pages(gfp=GFP_KERNEL|__GFP_DMA, order=2)",
        "iut.free_pages(pfn=pfn_0, order=2)",
    ]


def test_claimed_misuse_is_reported_and_nothing_changes():
    iut = Lockstep(reference(), "tiny")
    pfn = iut.alloc_pages(GFP_KERNEL | GFP.COMP, 2)
    iut.free_pages(pfn + 1, 0)
    iut.free_pages(pfn, 1)
    iut.free_pages(pfn, 2)
    iut.free_pages(pfn, 2)
    assert "misuse" in iut.trace[1].render() and "pfn_0 + 1" in iut.trace[1].render()
    assert iut.trace[-1].render().startswith("iut.free_pages(pfn=pfn_0, order=2)  # misuse")
    iut.check_free_area()


def test_blocking_allocation_in_atomic_context_is_reported_then_served():
    iut = Lockstep(reference(), "tiny")
    iut.set_context(Context.HARDIRQ)
    assert iut.alloc_pages(GFP_KERNEL, 0) is not None
    assert iut.alloc_pages(GFP_ATOMIC, 0) is not None


def test_unchecked_misuse_is_refused_as_undefined():
    iut = Lockstep(reference(), "tiny")
    pfn = iut.alloc_pages(GFP_KERNEL, 2)
    with pytest.raises(InvalidArgument, match="does not check .* undefined"):
        iut.free_pages(pfn, 1)


def test_unclaimed_misuse_is_refused_with_an_explanation():
    iut = Lockstep(broken("make_unclaiming"), "tiny", label="nofree")
    with pytest.raises(InvalidArgument, match="does not claim BUDDY-DOUBLE-FREE"):
        iut.free_pages(0x10, 0)


@pytest.mark.parametrize("factory,op,rule,text", [
    ("make_crash", lambda i: i.alloc_pages(GFP_KERNEL, 1), "IUT-NO-CRASH", "ZeroDivisionError: division by zero in my_buddy.c:42"),
    ("make_str", lambda i: i.alloc_pages(GFP_KERNEL, 0), "IUT-RETURN-TYPE", "(str); it must return an int or None"),
    ("make_false_report", lambda i: i.free_pages(i.alloc_pages(GFP_KERNEL, 0), 0), "IUT-NO-FALSE-REPORT", "reported DoubleFree"),
    ("make_sleeps", lambda i: i.free_pages(i.alloc_pages(GFP_KERNEL, 0), 0), "CTX-NO-SLEEP", "slept"),
])
def test_protocol_breaches_are_conformance_failures(factory, op, rule, text):
    iut = Lockstep(broken(factory), "tiny")
    with pytest.raises(ConformanceFailure) as e:
        op(iut)
    assert e.value.rule_id == rule and text in str(e.value), str(e.value)
    assert e.value.steps, "the failure carries its steps"


@pytest.mark.parametrize("factory,text", [
    ("make_no_free", "declares capability 'pages' but has no method free_pages()"),
    ("make_raises", "the factory raised RuntimeError: cannot open /dev/mem"),
    ("make_bad_claim", "not claimable rule IDs"),
])
def test_definition_errors(factory, text):
    with pytest.raises(InvalidDefinition, match=text.replace("(", r"\(").replace(")", r"\)")):
        Lockstep(broken(factory), "tiny")


def test_a_step_the_checker_refuses_inside_a_run_is_a_suite_bug_not_a_usage_error(monkeypatch):
    # InvalidArgument is a KmemspecError (exit 2 at the CLI); raised by a generated step it means the suite is wrong
    from hypothesis import strategies as st
    from hypothesis.stateful import rule

    from kmemspec.harness import load_impl
    from kmemspec.properties import PROFILES, run_check
    from kmemspec.properties.machines.kmalloc import KmallocRules
    from kmemspec.refmodel import load_machine

    @rule(addr=st.just(0x12345678))
    def ksize_of_nothing(self, addr):
        self.iut.ksize(addr)  # not a live object: the checker refuses it

    monkeypatch.setattr(KmallocRules, "kfree_null", ksize_of_nothing)
    with pytest.raises(RuntimeError, match="bug of kmemspec's suite"):
        run_check(load_impl("fast"), load_machine("tiny"), machine_spec="tiny", profile=PROFILES["ci"], seed_value=1, progress=None)


def test_cache_flags_and_clobbers_print_as_kernel_names():
    from kmemspec.refmodel.slab import SlabFlag

    iut = Lockstep(load_impl("fast").factory, "tiny")
    cache = iut.kmem_cache_create("TestSlub_RZ_alloc", 64, 0, int(SlabFlag.RED_ZONE | SlabFlag.POISON) | 0x1)
    p = iut.kmem_cache_alloc(cache, GFP_KERNEL)
    iut.clobber(p + 64)
    iut.kmem_cache_validate(cache)
    lines = [s.render() for s in iut.trace]
    assert "flags=SlabFlag.RED_ZONE | SlabFlag.POISON | 0x1)" in lines[0], lines[0]
    assert lines[2] == "iut.clobber(addr=obj_0 + 64)" and lines[3].startswith("iut.kmem_cache_validate(cache=cache_0)"), lines


def test_a_counterexample_drops_frees_of_null_when_the_failure_stays():
    from kmemspec.properties.runner import Failure, _without_noops
    from kmemspec.refmodel import load_machine
    impl = load_impl("mutant:double-free-unchecked")
    iut = Lockstep(impl.factory, "tiny")
    pfn = iut.alloc_pages(GFP_KERNEL, 0)
    iut.free_pages_addr(0, 0)
    iut.kfree(0)
    iut.free_pages(pfn, 0)
    with pytest.raises(ConformanceFailure) as caught:
        iut.free_pages(pfn, 0)
    f = caught.value
    assert [s.op for s in f.steps] == ["alloc_pages", "free_pages_addr", "kfree", "free_pages", "free_pages"]
    kept = _without_noops(impl, load_machine("tiny"), Failure(f.rule_id, f.message, list(f.steps)))
    assert kept.rule_id == "BUDDY-DOUBLE-FREE" and [s.op for s in kept.steps] == ["alloc_pages", "free_pages", "free_pages"]


def test_a_free_of_null_that_is_the_failure_stays():
    from kmemspec.properties.runner import Failure, _without_noops
    from kmemspec.refmodel import load_machine
    impl = load_impl("mutant:free-addr-null-unchecked")
    iut = Lockstep(impl.factory, "tiny")
    iut.kfree(0)
    with pytest.raises(ConformanceFailure) as caught:
        iut.free_pages_addr(0, 0)
    f = caught.value
    kept = _without_noops(impl, load_machine("tiny"), Failure(f.rule_id, f.message, list(f.steps)))
    assert kept.rule_id == "API-FREE-ADDR-NULL" and [s.op for s in kept.steps] == ["free_pages_addr"]


def test_shrinking_stops_at_the_profiles_bound_and_says_so():
    from kmemspec.properties import Profile, run_check
    from kmemspec.refmodel import load_machine
    hasty = Profile("hasty", 120, 40, "", shrink_seconds=0.0)
    result = run_check(load_impl("mutant:double-free-unchecked"), load_machine("tiny"), machine_spec="tiny", profile=hasty,
                       seed_value=1, progress=None)
    assert [f.rule_id for f in result.failures] == ["BUDDY-DOUBLE-FREE"] and result.failures[0].steps
    assert any(n.startswith("shrinking stopped after 0 s (profile hasty's shrink_seconds)") for n in result.notes), result.notes


def test_a_krealloc_that_finds_its_object_changed_is_the_failing_step():
    # The contents are checked after the step is recorded: the printed counterexample ends at the krealloc, so
    # pasted it fails the same way (it used to end one step early and pass).
    from kmemspec.harness import Lockstep, load_impl
    from kmemspec.refmodel import ConformanceFailure
    from kmemspec.refmodel.gfp import GFP_ATOMIC
    iut = Lockstep(load_impl("mutant:free-pointer-in-neighbour").factory, machine="tiny")
    cache = iut.kmem_cache_create("t", 1, 0, 0)
    first, second = iut.kmem_cache_alloc(cache, int(GFP_ATOMIC)), iut.kmem_cache_alloc(cache, int(GFP_ATOMIC))
    iut.krealloc(first, 0, int(GFP_ATOMIC))  # the mutant writes its free pointer into the neighbour
    with pytest.raises(ConformanceFailure, match="SLAB-CONTENTS-INTACT") as caught:
        iut.krealloc(second, 16, int(GFP_ATOMIC))
    assert [s.op for s in caught.value.steps][-2:] == ["krealloc", "krealloc"]
