"""No false positives: differently-designed correct allocators pass on every preset machine.

The oracle says what is allowed, never what one allocator does; a rule that only
`fast` or `reference` passes is a bug of the suite.
"""

from pathlib import Path

import pytest

from conftest import impl_path

from kmemspec.harness import load_impl
from kmemspec.properties import PROFILES, run_check
from kmemspec.refmodel import load_machine

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "my_allocator.py") + ":make"
IMPLS = ["reference", "fast", impl_path("alt_highest"), impl_path("alt_random")]
#: Other slab designs: the fullest partial slab first, never giving slabs back, the kernel's lazy GFP report,
#: wide red zones of other values, no debug layout at all.
SLAB_DESIGNS = [impl_path("alt_slab").replace(":make", f":{f}")
                for f in ("make_fullest", "make_hoarder", "make_lazy_gfp", "make_wide_red_zones", "make_no_debug")]
MACHINES = ["tiny", "tiny-wmark", "tiny-highmem", "x86_64", "x86_32"]


def _check(spec: str, machine: str, seed: int = 1):
    result = run_check(load_impl(spec), load_machine(machine), machine_spec=machine, profile=PROFILES["ci"],
                       seed_value=seed, progress=None)
    assert result.conforming, "\n".join(f"{f.rule_id}: {f.message}\n  " + "\n  ".join(s.render() for s in f.steps) for f in result.failures)
    return result


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("spec", IMPLS, ids=lambda s: Path(s.split(":")[0]).stem if "/" in s else s)
def test_correct_allocator_conforms(spec, machine):
    _check(spec, machine)


@pytest.mark.parametrize("machine", ["tiny", "tiny-highmem", "x86_64"])
@pytest.mark.parametrize("spec", SLAB_DESIGNS, ids=lambda s: s.rsplit(":", 1)[1])
def test_other_slab_designs_conform(spec, machine):
    _check(spec, machine)


def test_readme_example_conforms():
    _check(EXAMPLE, "tiny")


def test_exhaustion_and_the_watermark_band_are_reached():
    assert _check("reference", "tiny").outcomes["MUST_FAIL"] > 0
    assert _check("reference", "tiny-wmark").outcomes["MAY_FAIL"] > 0
