"""The command line as a user meets it: exit codes, one-line errors, reports, replay, pasteable tests."""

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import IMPLS

from kmemspec.cli import main
from kmemspec.refmodel import ConformanceFailure
from kmemspec.harness import ImplSpec, Ref, Step, dump_trace, hookimpl, load_impl, plugin_manager
from kmemspec.refmodel.errors import InvalidDefinition
from kmemspec.refmodel.gfp import GFP_KERNEL
from kmemspec.refmodel.presets import machine_preset
from kmemspec.refmodel.rules import RULES, render_markdown

ROOT = Path(__file__).resolve().parents[1]


def kmemspec(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kmemspec.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_check_reference_conforms_and_writes_three_reports(tmp_path):
    p = kmemspec("check", "reference", "--seed", "7", "--profile", "smoke", "--report-dir", str(tmp_path), "-q")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["schema"] == "kmemspec-report/1" and doc["conforming"] and doc["seed"] == 7
    assert {r["id"] for r in doc["rules"]} >= {"BUDDY-NO-CROSS-ZONE", "BUDDY-NO-SPURIOUS-FAIL", "BUDDY-DOUBLE-FREE"}
    assert "| `BUDDY-ALIGN` | safety | pass |" in (tmp_path / "report.md").read_text()
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) == len(doc["rules"]) and suite.get("failures") == "0"


def test_nonconforming_run_exits_1_with_replay_and_pasteable_test(tmp_path):
    spec = f"{IMPLS / 'broken.py'}:make_crash"
    p = kmemspec("check", spec, "--seed", "1", "--report-dir", str(tmp_path), "-q")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL IUT-NO-CRASH" in p.stdout and "replay: kmemspec replay" in p.stdout
    doc = json.loads((tmp_path / "report.json").read_text())
    failure = next(f for f in doc["failures"] if f["rule_id"] == "IUT-NO-CRASH")
    assert any("order=1" in s for s in failure["steps"])
    assert len(failure["steps"]) <= 3, failure["steps"]  # shrunk
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.find(".//testcase[@name='IUT-NO-CRASH']/failure") is not None

    replay = kmemspec("replay", failure["trace_file"])
    assert replay.returncode == 1 and "IUT-NO-CRASH" in replay.stdout, replay.stdout + replay.stderr
    assert kmemspec("replay", failure["trace_file"], "--impl", "reference").returncode == 0

    test_file = Path(failure["test_file"])
    source = test_file.read_text()
    assert "iut = Lockstep(make, machine='tiny')" in source and "from kmemspec.harness import Lockstep" in source
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "IUT-NO-CRASH" in run.stdout, run.stdout + run.stderr
    # a plain pytest where the reports lie collects none of them (exit 5: no tests collected)
    plain = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"], capture_output=True, text=True, cwd=tmp_path)
    assert plain.returncode == 5, plain.stdout + plain.stderr


def test_slab_failure_replays_and_its_test_pastes(tmp_path):
    # a clobber + validate failure: the trace holds kmem_cache_create, kmem_cache_alloc, clobber, kmem_cache_validate
    p = kmemspec("check", "mutant:no-left-red-zone", "--seed", "1", "--report-dir", str(tmp_path), "-q")
    assert p.returncode == 1, p.stdout + p.stderr
    failure = next(f for f in json.loads((tmp_path / "report.json").read_text())["failures"] if f["rule_id"] == "SLAB-REDZONE-CHECK")
    assert any("iut.clobber(addr=obj_" in s for s in failure["steps"]), failure["steps"]
    replay = kmemspec("replay", failure["trace_file"])
    assert replay.returncode == 1 and "SLAB-REDZONE-CHECK" in replay.stdout, replay.stdout + replay.stderr
    assert kmemspec("replay", failure["trace_file"], "--impl", "fast").returncode == 0
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", failure["test_file"]], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "SLAB-REDZONE-CHECK" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("args,text", [
    (["check", "no_such_module.nowhere:make"], "no module named 'no_such_module'"),
    (["check", "./nowhere/alloc.py:make"], "does not exist"),
    (["check", "json:make"], "json has no attribute 'make'"),
    (["check", f"{IMPLS / 'broken.py'}:make_raises"], "the factory raised RuntimeError"),
    (["check", f"{IMPLS / 'broken.py'}:make_no_free"], "has no method free_pages()"),
    (["check", "reference", "--profile", "nightly"], "profile 'nightly' does not exist"),
    (["check", "reference", "--machine", "vax"], "no such preset"),
    (["machine", "x86_64:lots"], "write it like 512M"),
    (["replay", "/nonexistent/trace.json"], "trace /nonexistent/trace.json"),
])
def test_usage_errors_are_one_line_exit_2(args, text):
    p = kmemspec(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.count("\n") == 1 and text in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_machine_and_rules_commands():
    p = kmemspec("machine", "x86_64")
    assert p.returncode == 0 and "zone DMA32" in p.stdout and "46 physical address bits" in p.stdout
    p = kmemspec("rules")
    assert p.returncode == 0 and all(r.id in p.stdout for r in RULES)


def test_docs_rules_md_is_generated_from_the_catalog():
    assert (ROOT / "docs" / "rules.md").read_text() == render_markdown(RULES), "run: kmemspec rules --markdown > docs/rules.md"


# --- composition: a loader plugin, the machine a replay file carries -------------------------------------------


class ToyScheme:
    """A third party's scheme: ``toy:SPEC`` is any spelling kmemspec knows, under another label."""

    @hookimpl
    def kmemspec_load_impl(self, spec):
        if not spec.startswith("toy:"):
            return None
        inner = spec.removeprefix("toy:")
        if not inner:
            raise InvalidDefinition(f"implementation {spec!r}: write toy:SPEC, e.g. toy:fast")
        impl = load_impl(inner)
        return ImplSpec(spec, "toy-" + impl.label, impl.factory)


@pytest.fixture(scope="module")
def toy_scheme():
    plugin = ToyScheme()
    plugin_manager().register(plugin)
    yield plugin
    plugin_manager().unregister(plugin)


def run_main(*args):
    """The kmemspec command in this process; returns the exit code (main sets a SIGTERM handler: restore it)."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        return main(list(args))
    finally:
        signal.signal(signal.SIGTERM, handler)


def test_a_plugin_scheme_loads_and_the_builtin_loader_is_the_fallback(toy_scheme):
    impl = load_impl("toy:reference")
    assert (impl.label, impl.spec) == ("toy-reference", "toy:reference")
    assert load_impl("reference").label == "reference"  # not the plugin's: it returned None
    with pytest.raises(InvalidDefinition, match="write toy:SPEC"):
        load_impl("toy:")


TOY_PLUGIN = """\
from kmemspec.harness import ImplSpec, hookimpl, load_impl


@hookimpl
def kmemspec_load_impl(spec):
    if spec.startswith("toy:"):
        impl = load_impl(spec.removeprefix("toy:"))
        return ImplSpec(spec, "toy-" + impl.label, impl.factory)
    return None
"""


def test_an_installed_plugin_is_found_through_its_entry_point_also_under_isolate(tmp_path):
    (tmp_path / "toyplug.py").write_text(TOY_PLUGIN)
    dist = tmp_path / "toyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kmemspec]\ntoy = toyplug\n")
    trace = tmp_path / "trace.json"
    trace.write_text(dump_trace([Step("alloc_pages", {"gfp": GFP_KERNEL, "order": 1}, "pfn_0"), Step("free_pages", {"pfn": Ref("pfn_0"), "order": 1})],
                                impl="toy:reference", machine="tiny"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    for extra in ([], ["--isolate"]):
        p = subprocess.run([sys.executable, "-m", "kmemspec.cli", "replay", str(trace), *extra], capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 0 and "replay of 2 steps on toy-reference: no rule broken" in p.stdout, (extra, p.stdout + p.stderr)


def test_an_unknown_scheme_is_one_line_exit_2(capsys):
    assert run_main("check", "wasm:alloc.wasm") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no module named 'wasm'" in err, err


class BrokenScheme:
    """``broken:type`` returns what is not an ImplSpec, ``broken:raise`` raises: bugs of a plugin, not of kmemspec."""

    @hookimpl
    def kmemspec_load_impl(self, spec):
        if spec == "broken:type":
            return "not an ImplSpec"
        if spec == "broken:raise":
            raise ZeroDivisionError("division by zero")
        return None


def test_a_broken_plugin_is_a_one_line_usage_error(capsys):
    plugin_manager().register(BrokenScheme(), name="broken")
    try:
        assert run_main("check", "broken:type") == 2
        assert "returned a str; return an ImplSpec" in capsys.readouterr().err
        assert run_main("check", "broken:raise") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "kmemspec_load_impl raised ZeroDivisionError" in err, err
    finally:
        plugin_manager().unregister(name="broken")


@pytest.fixture(scope="module")
def toy_failure(tmp_path_factory, toy_scheme):
    """One failing check through the plugin's scheme, on a machine file: (exit code, report.json, the machine file)."""
    root = tmp_path_factory.mktemp("toy")
    box = root / "box.json"
    box.write_text(json.dumps(machine_preset("tiny").to_dict()))
    code = run_main("check", "toy:mutant:double-free-unchecked", "--machine", str(box), "--seed", "1", "--report-dir", str(root / "r"), "-q")
    return code, json.loads((root / "r" / "report.json").read_text()), box


def test_check_runs_an_implementation_of_a_plugin_scheme(toy_failure, capsys):
    code, doc, _ = toy_failure
    assert code == 1 and doc["impl"]["label"] == "toy-mutant-double-free-unchecked"
    failure = next(f for f in doc["failures"] if f["rule_id"] == "BUDDY-DOUBLE-FREE")
    assert "make = load_impl('toy:mutant:double-free-unchecked').factory" in Path(failure["test_file"]).read_text()
    assert run_main("replay", failure["trace_file"], "--impl", "toy:fast") == 0


def test_a_replay_file_carries_its_machine(toy_failure, capsys, tmp_path):
    """Found with --machine ./box.json: the replay gives the same verdict after box.json changes, and after it is gone."""
    _, doc, box = toy_failure
    failure = next(f for f in doc["failures"] if f["rule_id"] == "BUDDY-DOUBLE-FREE")
    trace = json.loads(Path(failure["trace_file"]).read_text())
    assert trace["machine"] == str(box) and trace["machine_description"] == doc["machine"]["description"]
    capsys.readouterr()
    for change, extra in (("rewritten", []), ("deleted", []), ("deleted", ["--impl", "mutant:double-free-unchecked", "--isolate"])):
        if change == "rewritten":
            box.write_text('{"zones": "not a machine any more"}')
        elif box.exists():
            box.unlink()
        assert run_main("replay", failure["trace_file"], *extra) == 1, (change, extra)
        out = capsys.readouterr().out
        assert "replay reproduced a failure" in out and "BUDDY-DOUBLE-FREE" in out, (change, extra, out)
    legacy = tmp_path / "legacy.json"  # a file of an older kmemspec, without the description: replayed through the spelling
    legacy.write_text(json.dumps({k: v for k, v in trace.items() if k != "machine_description"}))
    assert run_main("replay", str(legacy)) == 2
    assert f"machine file {box}" in capsys.readouterr().err
    legacy.write_text(json.dumps({k: v for k, v in trace.items() if k != "machine_description"} | {"machine": "tiny"}))
    assert run_main("replay", str(legacy)) == 1 and "BUDDY-DOUBLE-FREE" in capsys.readouterr().out


def test_repeated_calls_print_as_loops():
    from kmemspec.harness.trace import Ref, Step, render_steps
    steps = ([Step("alloc_pages", {"gfp": 0x820, "order": 0}, f"pfn_{i}") for i in range(5)]
             + [Step("free_pages", {"pfn": Ref("pfn_3", 1), "order": 0})]
             + [Step("kfree", {"addr": 0}), Step("ksize", {"addr": 0})] * 6 + [Step("kfree", {"addr": 0})]
             + [Step("free_pages", {"pfn": Ref("pfn_1"), "order": 0})] * 2)
    assert render_steps(steps) == [
        "pfns_0 = [iut.alloc_pages(gfp=GFP_ATOMIC, order=0) for _ in range(5)]",
        "iut.free_pages(pfn=pfns_0[3] + 1, order=0)",
        "for _ in range(6): iut.kfree(addr=0x0); iut.ksize(addr=0x0)",
        "iut.kfree(addr=0x0)",
        "iut.free_pages(pfn=pfns_0[1], order=0)",  # two of a kind stay two lines
        "iut.free_pages(pfn=pfns_0[1], order=0)",
    ]


def test_calls_over_a_list_print_as_one_loop():
    from kmemspec.harness.trace import Ref, Step, render_steps
    steps = ([Step("kmem_cache_alloc", {"cache": Ref("cache_0"), "gfp": 0x820}, f"obj_{i}") for i in range(6)]
             + [Step("kmem_cache_free", {"cache": Ref("cache_0"), "addr": Ref(f"obj_{i}")}) for i in (1, 2, 3, 4)]
             + [Step("free_pages", {"pfn": Ref(f"fill_0[{i}]"), "order": 0}) for i in (7, 6, 5)]
             + [Step("kfree", {"addr": Ref("obj_5")}), Step("kfree", {"addr": Ref("obj_0")})])
    assert render_steps(steps) == [
        "objs_0 = [iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC) for _ in range(6)]",
        "for addr in objs_0[1:5]: iut.kmem_cache_free(cache=cache_0, addr=addr)",
        "for pfn in reversed(fill_0[5:8]): iut.free_pages(pfn=pfn, order=0)",
        "iut.kfree(addr=objs_0[5])",  # two are not a run
        "iut.kfree(addr=objs_0[0])",
    ]


def test_a_pasted_test_imports_the_gfp_names_of_its_calls_not_of_its_comments():
    from kmemspec.harness import render_test
    from kmemspec.harness.trace import Step
    step = Step("kmalloc", {"size": 8, "gfp": 0x822}, comment="misuse: __GFP_HIGHMEM is in GFP_SLAB_BUG_MASK; expects UnexpectedGfp")
    source = render_test([step], ["from kmemspec.harness import load_impl", "make = load_impl('fast').factory"], "tiny", "KMALLOC-GFP-BUG", "")
    assert "GFP_SLAB_BUG_MASK" not in source.split("def test_")[0] and "import GFP_ATOMIC, __GFP_HIGHMEM" in source, source
    exec(compile(source, "repro.py", "exec"), {})  # every name it imports exists


def test_the_ksize_a_claimed_size_class_adds_is_not_printed_unless_it_fails():
    from kmemspec.harness import Lockstep, load_impl
    from kmemspec.harness.trace import render_steps
    from kmemspec.refmodel.gfp import GFP_ATOMIC
    iut = Lockstep(load_impl("fast").factory, "tiny")  # fast claims KMALLOC-SIZE-CLASS: every kmalloc is followed by ksize
    for _ in range(3):
        iut.kmalloc(64, int(GFP_ATOMIC))
    assert [s.op for s in iut.trace] == ["kmalloc", "ksize"] * 3 and iut.trace[1].implied
    iut.kfree(iut.value_of("obj_0"))
    assert render_steps(iut.trace) == ["objs_0 = [iut.kmalloc(size=64, gfp=GFP_ATOMIC) for _ in range(3)]", "iut.kfree(addr=objs_0[0])"]
    assert render_steps(iut.trace[:2])[-1] == "iut.ksize(addr=obj_0)"  # the last step, where a failure is, is always shown
    with pytest.raises(ConformanceFailure, match="KMALLOC-SIZE-CLASS"):
        bad = Lockstep(load_impl("mutant:size-class-no-96").factory, "tiny")
        bad.kmalloc(65, int(GFP_ATOMIC))


def test_a_swept_counterexample_still_fails_when_pasted(tmp_path):
    from kmemspec.harness import Lockstep, load_impl, render_test
    from kmemspec.harness.spelling import spec_import_lines
    from kmemspec.harness.trace import render_steps
    from kmemspec.refmodel.gfp import GFP_KERNEL
    iut = Lockstep(load_impl("mutant:slab-double-free-unchecked").factory, "tiny")
    cache = iut.kmem_cache_create("t", 64, 0, 0)
    objs = [iut.kmem_cache_alloc(cache, int(GFP_KERNEL)) for _ in range(8)]
    for addr in objs[2:7]:
        iut.kmem_cache_free(cache, addr)
    with pytest.raises(ConformanceFailure) as caught:
        iut.kmem_cache_free(cache, objs[3])
    printed = render_steps(caught.value.steps)
    assert "for addr in objs_0[2:7]: iut.kmem_cache_free(cache=cache_0, addr=addr)" in printed and len(printed) == 4, printed
    test_file = tmp_path / "repro_slab_double_free.py"
    test_file.write_text(render_test(caught.value.steps, spec_import_lines("mutant:slab-double-free-unchecked"), "tiny",
                                     caught.value.rule_id, str(caught.value)))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and caught.value.rule_id in run.stdout, run.stdout + run.stderr


def test_a_looped_counterexample_agrees_in_replay_and_pasted_test(tmp_path):
    from kmemspec.harness import Lockstep, dump_trace, load_impl, render_test
    from kmemspec.harness.spelling import spec_import_lines
    from kmemspec.harness.trace import render_steps
    spec = f"{IMPLS / 'broken.py'}:make_crash_sixth_kfree_null"
    iut = Lockstep(load_impl(spec).factory, "tiny")
    for _ in range(5):
        iut.kfree(0)
        iut.ksize(0)
    with pytest.raises(ConformanceFailure) as caught:
        iut.kfree(0)
    steps = caught.value.steps
    printed = render_steps(steps)
    assert printed == ["for _ in range(5): iut.kfree(addr=0x0); iut.ksize(addr=0x0)", "iut.kfree(addr=0x0)"]
    trace = tmp_path / "IUT-NO-CRASH.json"
    trace.write_text(dump_trace(steps, impl=spec, machine="tiny", rule_id="IUT-NO-CRASH"))
    replay = kmemspec("replay", str(trace))
    assert replay.returncode == 1 and "\n".join(f"    {line}" for line in printed) in replay.stdout, replay.stdout + replay.stderr
    test_file = tmp_path / "repro_iut_no_crash.py"
    test_file.write_text(render_test(steps, spec_import_lines(spec), "tiny", "IUT-NO-CRASH", str(caught.value)))
    assert "\n".join(f"    {line}" for line in printed) in test_file.read_text()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "kfree(NULL) counter overflowed" in run.stdout, run.stdout + run.stderr
