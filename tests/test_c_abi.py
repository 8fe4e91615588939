"""The C ABI: the header agrees with the model, and C allocators (in process, isolated, over JSON lines) are checked.

The examples in examples/c are compiled here with the system C compiler; the
tests that need one skip, saying so, on a machine without it.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import matrix, matrix_id, tiered, why

from kmemspec.harness import load_impl
from kmemspec.harness.adapters import clib
from kmemspec.properties import PROFILES, Profile, run_check
from kmemspec.refmodel import VIOLATIONS, ZoneType, load_machine
from kmemspec.refmodel.errors import InvalidDefinition
from kmemspec.refmodel.gfp import GFP
from kmemspec.refmodel.kmalloc import ZERO_SIZE_PTR
from kmemspec.refmodel.slab import SlabFlag

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "harness" / "c" / "kmemspec_iut.h"
EXAMPLES = ROOT / "examples" / "c"
TESTS_C = Path(__file__).parent / "impls" / "c"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on this machine")
QUICK = Profile("quick", 40, 20, "for these tests")
#: JSON lines cost a pipe round trip per operation; this still fills zones and reaches every rule.
WIRE = Profile("wire", 60, 30, "for implementations over JSON lines")


def test_status_codes_are_the_violations_codes():
    text = HEADER.read_text()
    codes = {name: int(code) for code, name in re.findall(r"KMEMSPEC_E_\w+ = (\d+),\s*/\* (\w+)", text)}
    assert codes == {v.__name__: v.code for v in VIOLATIONS}


def test_gfp_bits_and_zone_types_are_the_models():
    text = HEADER.read_text()
    bits = {name: int(value, 16) for name, value in re.findall(r"#define KMEMSPEC___GFP_(\w+)\s+(0x[0-9a-f]+)u", text)}
    assert bits == {g.name: int(g) for g in GFP}
    zones = {name: int(value) for name, value in re.findall(r"KMEMSPEC_ZONE_(\w+) = (\d+)", text)}
    assert zones == {z.name: int(z) for z in ZoneType}
    flags = {name: int(value, 16) for name, value in re.findall(r"#define KMEMSPEC_SLAB_(\w+)\s+(0x[0-9a-f]+)u", text)}
    assert flags == {f.name: int(f) for f in SlabFlag}
    assert re.search(r"#define KMEMSPEC_ZERO_SIZE_PTR\s+(\d+)u", text).group(1) == str(ZERO_SIZE_PTR)


def _cc(out: Path, *sources: Path, shared: bool = True, defines: tuple[str, ...] = ()) -> Path:
    cmd = [CC, "-std=c11", "-O1", "-Wall", "-Werror", f"-I{HEADER.parent}", f"-I{EXAMPLES}", *defines, "-o", str(out), *map(str, sources)]
    if shared:
        cmd[1:1] = ["-shared", "-fPIC"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or clang) on this machine")
    d = tmp_path_factory.mktemp("c")
    return {
        "buddy": _cc(d / "libbuddy.so", EXAMPLES / "buddy.c"),
        "buddy-bug": _cc(d / "libbuddy-bug.so", EXAMPLES / "buddy.c", defines=("-DSEEDED_BUG",)),
        "bitmap": _cc(d / "bitmap_stdio", EXAMPLES / "bitmap_stdio.c", shared=False),
        "bitmap-bug": _cc(d / "bitmap_stdio-bug", EXAMPLES / "bitmap_stdio.c", shared=False, defines=("-DSEEDED_BUG",)),
        "crashy": _cc(d / "libcrashy.so", TESTS_C / "crashy.c"),
        "layout": _cc(d / "layout", TESTS_C / "layout.c", shared=False),
        "nofree": _cc(d / "libnofree.so", TESTS_C / "stub.c", defines=('-DSTUB_CAPS="pages"', "-DSTUB_NO_FREE")),
        "abi2": _cc(d / "libabi2.so", TESTS_C / "stub.c", defines=('-DSTUB_CAPS="pages"', "-DSTUB_ABI=2")),
        "memless": _cc(d / "libmemless.so", TESTS_C / "stub.c", defines=('-DSTUB_CAPS="pages memory"',)),
        "null": _cc(d / "libnull.so", TESTS_C / "stub.c", defines=('-DSTUB_CAPS="pages"',)),
    }


@needs_cc
def test_struct_layout_is_the_ctypes_layout(built):
    layout = json.loads(subprocess.run([str(built["layout"])], capture_output=True, text=True, check=True).stdout)
    structs = {"kmemspec_range": clib._Range, "kmemspec_zone": clib._Zone, "kmemspec_machine": clib._Machine, "kmemspec_env": clib._Env,
               "kmemspec_slab": clib._SlabRow}
    for key, (offset, size) in layout.items():
        struct, _, field = key.partition(".")
        if struct == "sizeof":
            import ctypes
            assert ctypes.sizeof(structs[field]) == size, key
            continue
        desc = getattr(structs[struct], field)
        assert (desc.offset, desc.size) == (offset, size), key


def _check(spec: str, machine: str, profile=PROFILES["ci"], seed=1, shrink=True, **kw):
    return run_check(load_impl(spec, **kw), load_machine(machine), machine_spec=machine, profile=profile, seed_value=seed,
                     progress=None, shrink=shrink)


#: The C examples' matrices. The buddy allocator in process, first on tiny-highmem: on tiny the default tier
#: checks it through the command line (test_cli_checks_a_c_library_and_names_usage_errors).
BUDDY_MACHINES = ("tiny-highmem", "tiny", "tiny-wmark", "x86_64", "x86_32")
#: The bitmap allocator over JSON lines.
BITMAP_MACHINES = ("tiny", "tiny-wmark", "tiny-highmem", "x86_64", "x86_32")


@needs_cc
@pytest.mark.parametrize("lib,machine,seed", matrix(["buddy"], BUDDY_MACHINES), ids=matrix_id)
def test_c_buddy_example_conforms_in_process(built, checked, lib, machine, seed):
    result = checked(f"c:{built[lib]}", machine, seed=seed)
    assert result.conforming, why(result)
    assert result.transport == "c" and {"BUDDY-DOUBLE-FREE", "CTX-MIGHT-SLEEP"} <= result.claims


@needs_cc
def test_c_red_zones_are_validated_through_the_abi(built):
    # lib/slub_kunit.c test_clobber_zone and test_clobber_redzone_free, through kmemspec_kmem_cache_validate
    from kmemspec.harness import Lockstep
    from kmemspec.refmodel.gfp import GFP_KERNEL

    iut = Lockstep(load_impl(f"c:{built['buddy']}").factory, "tiny", label="c")
    cache = iut.kmem_cache_create("TestSlub_RZ_alloc", 64, 0, int(SlabFlag.RED_ZONE))
    live, freed = iut.kmem_cache_alloc(cache, GFP_KERNEL), iut.kmem_cache_alloc(cache, GFP_KERNEL)
    iut.kmem_cache_free(cache, freed)
    for addr in (live + 64, live - 1, freed + 64, freed - 1):
        iut.clobber(addr)
        iut.kmem_cache_validate(cache)  # must report SlabCorruption (code 12) and restore the byte
        iut.kmem_cache_validate(cache)
    assert iut.coverage["SLAB-REDZONE-CHECK"] == 4 and not iut.slab.corrupt


@needs_cc
def test_c_buddy_seeded_bug_is_killed_by_its_rule(built):
    result = _check(f"c:{built['buddy-bug']}", "tiny", seed=20261125, shrink=False)  # the kill only
    # The zonelist walk that starts one zone too high hands out pages (GFP-ZONE-ELIGIBLE) and slab pages (SLAB-ZONE-ELIGIBLE)
    # from the wrong zone: whichever the sequence reaches first is the same bug's kill.
    assert {"GFP-ZONE-ELIGIBLE", "SLAB-ZONE-ELIGIBLE"} & {f.rule_id for f in result.failures}, why(result)


@needs_cc
@pytest.mark.parametrize("lib,machine,seed", matrix(["bitmap"], BITMAP_MACHINES), ids=matrix_id)
def test_json_lines_example_in_c_conforms(request, built, checked, lib, machine, seed):
    result = checked(f"exec:{built[lib]}", machine, seed=seed, profile=tiered(request, WIRE))
    assert result.conforming, why(result)
    assert result.transport == "process" and result.coverage["IUT-WIRE-FORMAT"] > 0


@needs_cc
def test_json_lines_example_seeded_bug_is_killed_by_its_rule(built):
    result = _check(f"exec:{built['bitmap-bug']}", "tiny", profile=WIRE, seed=6, shrink=False)  # the kill, soonest (measured)
    assert {"INTROSPECT-FREE-AREA", "BUDDY-NO-SPURIOUS-FAIL"} & {f.rule_id for f in result.failures}, why(result)


@needs_cc
def test_isolated_c_library_that_segfaults_is_a_report_not_a_dead_suite(built):
    impl = load_impl(f"c:{built['crashy']}", isolate=True, timeout=5)
    # Unshrunk: the crash's kill; shrinking through restarted children is test_process.py's.
    result = run_check(impl, load_machine("tiny"), machine_spec="tiny", profile=QUICK, seed_value=2, progress=None, shrink=False)
    [f] = result.failures
    assert f.rule_id == "IUT-PROCESS-ALIVE" and "SIGSEGV" in f.message and "order=1" in f.steps[-1].render()


@needs_cc
@pytest.mark.parametrize("lib,text", [
    ("nofree", "does not export kmemspec_free_pages()"),
    ("abi2", "implements kmemspec ABI version 2"),
    ("memless", "declares capability 'memory' but does not export kmemspec_read_phys()"),
])
def test_a_library_that_is_not_an_implementation_is_a_usage_error(built, lib, text):
    with pytest.raises(InvalidDefinition) as e:
        load_impl(f"c:{built[lib]}")
    assert text in str(e.value)


@needs_cc
def test_cli_checks_a_c_library_and_names_usage_errors(built, tmp_path):
    def kmemspec(*args):
        return subprocess.run([sys.executable, "-m", "kmemspec.cli", *args], capture_output=True, text=True, timeout=600)

    p = kmemspec("check", f"c:{built['buddy']}", "--seed", "1", "--profile", "smoke", "-q", "--report-dir", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((tmp_path / "report.json").read_text())["impl"]["transport"] == "c"
    for spec, text in [(f"c:{tmp_path}/nope.so", "does not exist"), (f"c:{built['null']}", "kmemspec_create() returned NULL"),
                       (f"c:{HEADER}", "cannot load")]:
        p = kmemspec("check", spec, "-q", "--report-dir", str(tmp_path / "x"))
        assert p.returncode == 2 and text in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert kmemspec("include-dir").stdout.strip() == str(HEADER.parent)


def test_c_path_must_be_given():
    with pytest.raises(InvalidDefinition, match="write c:path/to/liballoc.so"):
        load_impl("c:")
