"""The ``kmemspec`` command: check, replay, machine, rules, bench.

Exit codes: 0 conforming (or the command did what it was asked), 1 not
conforming (or a replay reproduced its failure), 2 a usage error, printed as
one line, 3 an internal error of kmemspec itself.

The CLI is a composition root: it sits above ``kmemspec.properties`` and
imports it openly, inside ``check`` only, so that ``replay``, ``machine`` and
``rules`` start without Hypothesis. A machine is resolved once, into a
``ResolvedMachine``, and that value goes down to the loader, the run and
the replay files.
"""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Sequence

from .. import harness
from ..harness.expectations import compare, expectations_from_report, load_expectations, render_expectations
from ..harness.loader import ImplSpec, load_impl
from ..harness.lockstep import Lockstep
from ..harness.report import _atomic_write, build_report, write_reports
from ..harness.spelling import ResolvedMachine
from ..harness.trace import load_trace, render_steps
from ..refmodel.errors import ConformanceFailure, KmemspecError
from ..refmodel.rules import RULES, RULES_BY_ID, render_markdown, render_table

EXIT_OK, EXIT_NONCONFORMING, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
DEFAULT_MACHINE = "tiny"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kmemspec", description="Check a memory allocator against an executable specification of Linux kernel memory management.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="run the conformance suite on an implementation and write reports")
    c.add_argument("impl", nargs="?", default="fast",
                   help="fast, reference, MODULE:FACTORY, path/to/file.py:FACTORY, c:path/to/lib.so, exec:COMMAND or mutant:NAME (default: fast)")
    c.add_argument("--machine", default=DEFAULT_MACHINE, help="preset (tiny, tiny-highmem, x86_64[:SIZE], x86_32[:SIZE]) or a .toml/.json file (default: tiny)")
    c.add_argument("--profile", default="ci", help="smoke, ci (default), dev or campaign")
    c.add_argument("--seed", type=int, default=None, help="Hypothesis seed, to reproduce a run (default: random, printed)")
    c.add_argument("--report-dir", type=Path, default=None, help="where reports go (default: conformance_reports/<impl>)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    c.add_argument("--expectations", type=Path, default=None, metavar="FILE",
                   help="gate on an expectations file (TOML): exit 0 when results match it, 1 on a new failure or a lost claim")
    c.add_argument("--skip", action="append", default=[], metavar="RULE",
                   help="a known departure: a failure of RULE ends its example but not the search, so the other rules are "
                        "still judged (repeatable; --expectations skips every rule it expects to fail)")
    c.add_argument("--write-expectations", type=Path, default=None, metavar="FILE", help="write an expectations file from this run's results")
    _process_options(c)

    r = sub.add_parser("replay", help="replay a recorded failing sequence (a failures/*.json file from a report)")
    r.add_argument("trace", type=Path)
    r.add_argument("--impl", default=None, help="replay against another implementation than the recorded one")
    _process_options(r)

    sub.add_parser("include-dir", help="print the directory of kmemspec_iut.h, the C ABI header (for cc -I)")

    m = sub.add_parser("machine", help="print a machine description: zones, PFN ranges, watermarks")
    m.add_argument("spec", nargs="?", default=DEFAULT_MACHINE)
    m.add_argument("--json", action="store_true", help="print the machine file format (JSON)")

    ru = sub.add_parser("rules", help="print the rule catalog")
    ru.add_argument("--markdown", action="store_true", help="print docs/rules.md")

    mu = sub.add_parser("mutants", help="run the bundled seeded bugs over many seeds; write kill tables and plots")
    mu.add_argument("names", nargs="*", metavar="NAME|SUBSYSTEM", help="mutants by name or by subsystem (pages, kmalloc, slab, slab_debug, context); default: all")
    mu.add_argument("--seeds", type=int, default=20, help="seeds 1..N per mutant, one unshrunk run each (default 20)")
    mu.add_argument("--profile", default="ci", help="the profile of each run (default ci, as a CI pipeline runs it)")
    mu.add_argument("--jobs", type=int, default=None, help="processes (default: one per CPU)")
    mu.add_argument("--report-dir", type=Path, default=Path("conformance_reports") / "mutants", help="default conformance_reports/mutants")
    mu.add_argument("--no-shrink", action="store_true", help="skip the shrunk run that measures each counterexample's printed length")

    b = sub.add_parser("bench", help="measure operations per second and the oracle's cost per checked operation")
    b.add_argument("--ops", type=int, default=20000, help="operations per workload (default 20000)")
    b.add_argument("--impl", action="append", default=None, help="implementations to time, any spelling `check` takes (default: reference and fast)")
    b.add_argument("--isolated", action="store_true", help="also time each implementation behind the JSON lines protocol (--isolate)")
    b.add_argument("--no-scale", action="store_true", help="skip the whole-check runs on tiny, 16 GiB, 1 TiB and 64 TiB (about half a minute)")
    return p


def _process_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--isolate", action="store_true", help="run the implementation in a child process: a crash or hang becomes a report")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-request timeout for an implementation in a child process (default 10)")
    p.add_argument("--hang-budget", type=float, default=None, metavar="SECONDS",
                   help="stop shrinking once timeouts have cost this long, and report what was found (default 60; 0: no limit)")


def _load(args: argparse.Namespace, spec: str, machine: ResolvedMachine) -> ImplSpec:
    return load_impl(spec, isolate=args.isolate, timeout=args.timeout, hang_budget=args.hang_budget, machine=machine)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A cancelled CI job sends SIGTERM: leave through SystemExit so that child processes are stopped.
    # (Only the main thread may set it; main() called in-process from another thread keeps the caller's.)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return _COMMANDS[args.command](args)
    except KmemspecError as e:
        print(f"kmemspec: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kmemspec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        sys.stderr.close()
        return EXIT_OK
    except Exception:  # a bug of kmemspec itself: never mistaken for a verdict on the implementation
        traceback.print_exc()
        print("kmemspec: internal error (the traceback above); this is a bug of kmemspec, not a verdict on the implementation", file=sys.stderr)
        return EXIT_INTERNAL


def _check(args: argparse.Namespace) -> int:
    from ..properties import PROFILES, run_check  # Hypothesis and the state machines: only a check needs them

    if args.profile not in PROFILES:
        print(f"kmemspec: error: profile {args.profile!r} does not exist; choose one of {', '.join(PROFILES)}", file=sys.stderr)
        return EXIT_USAGE
    resolved = ResolvedMachine.from_spec(args.machine)
    machine = resolved.machine
    expected = load_expectations(args.expectations) if args.expectations else None  # a bad file fails before the run
    skip = _skipped(args.skip) | frozenset(r for r, s in (expected.rules.items() if expected else ()) if s == "fail")
    impl = _load(args, args.impl, resolved)
    out_dir = args.report_dir or Path("conformance_reports") / impl.label
    result = run_check(
        impl, machine, machine_spec=resolved.spec, profile=PROFILES[args.profile],
        seed_value=args.seed, progress=None if args.quiet else sys.stderr, skip=skip,
    )
    _clear_stale(out_dir)
    comparison = compare(build_report(result, out_dir), expected) if expected is not None else None
    doc = write_reports(result, out_dir, expectation_results=comparison.to_json() if comparison else None)
    s = doc["summary"]
    verdict = "conforming" if result.conforming else "NOT conforming"
    print(f"{impl.label} on {result.machine_spec}: {verdict}: {s['pass']} pass, {s['fail']} fail, {s['not claimed']} not claimed, "
          f"{s['not applicable']} not applicable, {s['not exercised']} not exercised (seed {result.seed}, {result.examples} examples, {result.seconds:.1f}s)")
    for note in result.notes:
        print(f"note: {note}")
    for f in doc["failures"]:
        print(f"\nFAIL{' (skipped, not shrunk)' if f.get('skipped') else ''} {f['message'] if f['message'].startswith(f['rule_id']) else f['rule_id'] + ': ' + f['message']}")
        for line in f["steps"]:
            print(f"    {line}")
        print(f"  replay: {f['replay']}")
    print(f"\nreports: {out_dir}/report.json, report.md, report.html, junit.xml")
    if args.write_expectations:
        _atomic_write(args.write_expectations, render_expectations(expectations_from_report(doc)))
        print(f"expectations written: {args.write_expectations}")
    if comparison is not None:
        print(comparison.render_text())
        return EXIT_OK if comparison.gating_ok else EXIT_NONCONFORMING
    return EXIT_OK if result.conforming else EXIT_NONCONFORMING


def _skipped(names: list[str]) -> frozenset[str]:
    """--skip's rule IDs, each a catalog rule (a usage error names the nearest one)."""
    for name in names:
        if name not in RULES_BY_ID:
            near = difflib.get_close_matches(name.upper(), RULES_BY_ID, n=1)
            raise KmemspecError(f"--skip {name}: not a rule ID" + (f"; did you mean {near[0]}?" if near else "") + " (`kmemspec rules` lists them)")
    return frozenset(names)


def _clear_stale(out_dir: Path) -> None:
    stale = out_dir / "failures"
    if stale.is_dir():
        for f in stale.iterdir():
            if f.suffix in (".json", ".py"):
                f.unlink()


def _replay(args: argparse.Namespace) -> int:
    try:
        data = load_trace(args.trace.read_text())
    except OSError as e:
        raise KmemspecError(f"trace {args.trace}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise KmemspecError(f"trace {args.trace}: {e}") from None
    resolved = _recorded_machine(args.trace, data)
    impl = _load(args, args.impl or data["impl"], resolved)
    steps = data["steps"]
    i = 0
    try:
        iut = Lockstep(impl.factory, resolved.machine, label=impl.label)
        for i, step in enumerate(steps):
            iut.replay_step(step)
    except ConformanceFailure as f:
        print(f"replay reproduced a failure at step {i}: {f}")
        for line in render_steps(f.steps):
            print(f"    {line}")
        return EXIT_NONCONFORMING
    finally:
        impl.close()
    print(f"replay of {len(steps)} steps on {impl.label}: no rule broken" + (f" (the recorded failure was {data['rule_id']})" if data.get("rule_id") else ""))
    return EXIT_OK


def _recorded_machine(trace: Path, data: dict[str, Any]) -> ResolvedMachine:
    """The machine a trace was recorded on: its embedded description, or (older files) its spelling read again."""
    spec = str(data["machine"])
    if "machine_description" in data:
        return ResolvedMachine.from_description(spec, data["machine_description"], where=f"trace {trace}")
    return ResolvedMachine.from_spec(spec)


def _machine(args: argparse.Namespace) -> int:
    m = ResolvedMachine.from_spec(args.spec).machine
    if args.json:
        import json
        print(json.dumps(m.to_dict(), indent=1))
    else:
        print(m.describe())
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    print(render_markdown(RULES) if args.markdown else render_table(RULES), end="\n" if not args.markdown else "")
    return EXIT_OK


def _mutants(args: argparse.Namespace) -> int:
    from ..properties import PROFILES
    from ..properties.mutants import PLOTS_HINT, build_mutant_report, has_matplotlib, run_mutants, select, write_mutant_report

    if args.profile not in PROFILES:
        print(f"kmemspec: error: profile {args.profile!r} does not exist; choose one of {', '.join(PROFILES)}", file=sys.stderr)
        return EXIT_USAGE
    if args.seeds < 1:
        print("kmemspec: error: --seeds must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    chosen = select(args.names)
    seeds = list(range(1, args.seeds + 1))
    print(f"kmemspec mutants: {len(chosen)} mutants x {len(seeds)} seeds, profile {args.profile}", file=sys.stderr)
    summaries = run_mutants(chosen, seeds, profile=args.profile, jobs=args.jobs, progress=sys.stderr, shrink=not args.no_shrink)
    doc = build_mutant_report(summaries, seeds, args.profile)
    written = write_mutant_report(doc, args.report_dir)
    weak = [m for m in doc["mutants"] if m["kill_rate"] < 0.99]
    print(f"{len(chosen) - len(weak)} of {len(chosen)} mutants killed by their own rule in >= 99% of runs "
          f"(overall {doc['overall_kill_rate']:.1%})")
    for m in weak:
        print(f"  {m['name']}: {m['kills']}/{m['runs']} by {m['rule_id']}")
    if doc["worst_length_ratio"] is not None:
        longest = max(doc["mutants"], key=lambda m: m["printed_lines"] or 0)
        print(f"longest printed counterexample: {longest['printed_lines']} lines ({longest['name']}); worst ratio to the "
              f"shortest program by hand: {doc['worst_length_ratio']:g}")
    print("written: " + ", ".join(str(p) for p in written))
    if not has_matplotlib():
        print(f"no plots: {PLOTS_HINT}")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from ..harness.bench import run_bench
    from ..harness.bench import scale_table
    from ..properties.speed import floor_table
    lines = [run_bench(args.ops, args.impl or ["reference", "fast"], isolated=args.isolated), "", *floor_table()]
    if not args.no_scale:
        lines += ["", *scale_table()]
    print("\n".join(lines))
    return EXIT_OK


def _include_dir(args: argparse.Namespace) -> int:
    print(Path(harness.__file__).resolve().parent / "c")
    return EXIT_OK


_COMMANDS = {"check": _check, "replay": _replay, "machine": _machine, "rules": _rules, "mutants": _mutants, "bench": _bench,
             "include-dir": _include_dir}
