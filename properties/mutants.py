"""``kmemspec mutants``: the bundled seeded bugs, each run over many seeds, and the kill statistics researchers quote.

Each (mutant, seed) is one unshrunk ``ci`` run, as a CI pipeline gets it: the
mutant is killed when its own rule (or one the same slip breaks as directly,
``Mutant.also``) fails. One shrunk run per killed mutant measures the printed
counterexample. ``write_mutant_report`` writes ``mutants.json``,
``mutants.md`` and, with matplotlib, the kill matrix and the time-to-kill
distribution as PNG and SVG.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Final, Iterable, TextIO

from ..harness.impls.mutants import MUTANTS, Mutant
from ..harness.loader import load_impl
from ..harness.report import _atomic_write
from ..harness.trace import render_steps
from ..refmodel.errors import KmemspecError
from ..refmodel.presets import load_machine
from ..refmodel.rules import RULES, RULES_BY_ID
from .mutant_programs import SHORTEST
from .runner import PROFILES, run_check

MUTANTS_SCHEMA: Final = "kmemspec-mutants/2"
PLOTS_HINT: Final = "pip install 'kmemspec[plots]' (matplotlib) to get the plots"


@dataclass(frozen=True)
class MutantRun:
    """One unshrunk run of one mutant on one seed."""

    mutant: str
    seed: int
    killed: bool  # by its own rule (or an ``also`` rule)
    rules: tuple[str, ...]  # every rule that failed
    seconds: float
    examples: int


@dataclass
class MutantSummary:
    """One mutant over all its seeds."""

    name: str
    subsystem: str
    rule_id: str
    machine: str
    runs: int = 0
    kills: int = 0
    seconds_to_kill: list[float] = field(default_factory=list)
    killed_by: Counter[str] = field(default_factory=Counter)  # rule -> runs in which it failed
    printed_lines: int | None = None  # the shrunk counterexample's lines, from the first killing seed
    shrunk_rule: str | None = None

    @property
    def kill_rate(self) -> float:
        return self.kills / self.runs if self.runs else 0.0


def select(names: Iterable[str]) -> list[Mutant]:
    """Mutants by name or by subsystem (the subsystem of the rule each targets); all when ``names`` is empty."""
    wanted = list(names)
    if not wanted:
        return [MUTANTS[n] for n in sorted(MUTANTS)]
    chosen: dict[str, Mutant] = {}
    subsystems = {RULES_BY_ID[m.rule_id].subsystem for m in MUTANTS.values()}
    for w in wanted:
        if w in MUTANTS:
            chosen[w] = MUTANTS[w]
        elif w in subsystems:
            chosen.update({m.name: m for m in MUTANTS.values() if RULES_BY_ID[m.rule_id].subsystem == w})
        else:
            raise KmemspecError(f"no mutant or subsystem {w!r}; subsystems are {', '.join(sorted(subsystems))}, "
                                "and `kmemspec check mutant:NAME` names come from harness/impls/mutants.py")
    return [chosen[n] for n in sorted(chosen)]


def _run_one(name: str, seed: int, profile: str) -> MutantRun:
    m = MUTANTS[name]
    t0 = time.perf_counter()
    result = run_check(load_impl(f"mutant:{name}"), load_machine(m.machine), machine_spec=m.machine, profile=PROFILES[profile],
                       seed_value=seed, progress=None, shrink=False)
    failed = tuple(sorted(f.rule_id for f in result.failures if f.steps))
    return MutantRun(name, seed, any(r in failed for r in (m.rule_id, *m.also)), failed, time.perf_counter() - t0, result.examples)


def _shrunk_lines(name: str, seed: int, profile: str) -> tuple[int, str]:
    """The printed length of the shrunk counterexample of the mutant's own rule on ``seed``."""
    m = MUTANTS[name]
    result = run_check(load_impl(f"mutant:{name}"), load_machine(m.machine), machine_spec=m.machine, profile=PROFILES[profile],
                       seed_value=seed, progress=None)
    # Its own rule's counterexample first, then one of a rule the same slip breaks.
    own = ([f for f in result.failures if f.rule_id == m.rule_id] or [f for f in result.failures if f.rule_id in m.also]
           or result.failures)
    return (len(render_steps(own[0].steps)), own[0].rule_id) if own else (0, "")


class _Ticker:
    """A progress line for ``total`` pieces of work: redrawn on a terminal, one line every 10 s elsewhere."""

    def __init__(self, stream: TextIO | None, total: int, what: str) -> None:
        self.stream, self.total, self.what = stream, total, what
        self.tty = bool(stream and stream.isatty())
        self.done, self.started, self.shown = 0, time.monotonic(), 0.0

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.stream is not None and (self.done == self.total or now - self.shown >= (0.2 if self.tty else 10.0)):
            self.shown = now
            end = "\n" if not self.tty or self.done == self.total else ""
            self.stream.write(("\r" if self.tty else "") + f"kmemspec mutants: {self.done}/{self.total} {self.what}, {now - self.started:.0f}s" + end)
            self.stream.flush()


def run_mutants(mutants: list[Mutant], seeds: Iterable[int], *, profile: str = "ci", jobs: int | None = None,
                progress: TextIO | None = None, shrink: bool = True) -> list[MutantSummary]:
    """Every mutant on every seed (``jobs`` processes), then one shrunk run per killed mutant."""
    seeds = list(seeds)
    summaries = {m.name: MutantSummary(m.name, RULES_BY_ID[m.rule_id].subsystem, m.rule_id, m.machine) for m in mutants}
    jobs = jobs or os.cpu_count() or 1
    tasks = [(m.name, s) for m in mutants for s in seeds]
    first_kill: dict[str, int] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        runs = _Ticker(progress, len(tasks), "runs")
        for fut in [pool.submit(_run_one, name, seed, profile) for name, seed in tasks]:
            run = fut.result()
            s = summaries[run.mutant]
            s.runs += 1
            s.killed_by.update(run.rules)
            if run.killed:
                s.kills += 1
                s.seconds_to_kill.append(run.seconds)
                first_kill.setdefault(run.mutant, run.seed)
            runs.tick()
        if shrink:
            shrunk = _Ticker(progress, len(first_kill), "shrunk counterexamples")
            futures = {name: pool.submit(_shrunk_lines, name, seed, profile) for name, seed in first_kill.items()}
            for name, fut in futures.items():
                summaries[name].printed_lines, summaries[name].shrunk_rule = fut.result()
                shrunk.tick()
    return [summaries[m.name] for m in mutants]


# -- the report --------------------------------------------------------------------------------


def build_mutant_report(summaries: list[MutantSummary], seeds: list[int], profile: str) -> dict[str, Any]:
    targeted = {m.rule_id for m in MUTANTS.values()} | {r for m in MUTANTS.values() for r in m.also}
    return {
        "schema": MUTANTS_SCHEMA,
        "profile": profile,
        "seeds": seeds,
        "mutants": [
            {"name": s.name, "subsystem": s.subsystem, "rule_id": s.rule_id, "machine": s.machine, "runs": s.runs, "kills": s.kills,
             "kill_rate": round(s.kill_rate, 4), "median_seconds_to_kill": round(statistics.median(s.seconds_to_kill), 3) if s.seconds_to_kill else None,
             "seconds_to_kill": [round(t, 3) for t in s.seconds_to_kill], "killed_by": dict(sorted(s.killed_by.items())),
             "killed_by_target": s.kills > 0, "printed_lines": s.printed_lines, "shrunk_rule": s.shrunk_rule,
             "shortest_lines": len(SHORTEST[s.name]), "length_ratio": _ratio(s)}
            for s in summaries
        ],
        "worst_length_ratio": max((r for s in summaries if (r := _ratio(s)) is not None), default=None),
        "untargeted_rules": sorted(r.id for r in RULES if r.id not in targeted),
        "overall_kill_rate": round(sum(s.kills for s in summaries) / max(1, sum(s.runs for s in summaries)), 4),
    }


def _ratio(s: MutantSummary) -> float | None:
    """The printed counterexample's lines over the hand-written shortest program's (properties/mutant_programs.py)."""
    return None if s.printed_lines is None else round(s.printed_lines / len(SHORTEST[s.name]), 2)


def render_mutant_markdown(doc: dict[str, Any]) -> str:
    ms = doc["mutants"]
    weak = [m for m in ms if m["kill_rate"] < 0.99]
    out = [f"# Mutant kill report ({len(ms)} mutants, {len(doc['seeds'])} seeds each, profile `{doc['profile']}`, unshrunk runs)", "",
           f"Overall: {doc['overall_kill_rate']:.1%} of single runs kill their mutant by its own rule; "
           f"{len(ms) - len(weak)} of {len(ms)} mutants die in at least 99% of runs."
           + ("" if doc["worst_length_ratio"] is None else
              f" Printed counterexamples are at most {max(m['printed_lines'] or 0 for m in ms)} lines, at worst "
              f"{doc['worst_length_ratio']:g} times the shortest program written by hand."), "",
           "| mutant | subsystem | targeted rule | machine | killed | kill rate | median s to kill | printed lines | by hand | other rules that failed |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for m in ms:
        others = ", ".join(f"{r} ({n})" for r, n in m["killed_by"].items() if r != m["rule_id"])
        med = "" if m["median_seconds_to_kill"] is None else f"{m['median_seconds_to_kill']:.2f}"
        out.append(f"| `{m['name']}` | {m['subsystem']} | `{m['rule_id']}` | {m['machine']} | {m['kills']}/{m['runs']} | "
                   f"{m['kill_rate']:.0%} | {med} | {'' if m['printed_lines'] is None else m['printed_lines']} | {m['shortest_lines']} | {others} |")
    out += ["", "## Rules no mutant targets", "", ", ".join(f"`{r}`" for r in doc["untargeted_rules"]) or "none"]
    return "\n".join(out) + "\n"


def write_mutant_report(doc: dict[str, Any], out_dir: Path, *, plots: Callable[[dict[str, Any], Path], list[Path]] | None = None) -> list[Path]:
    """mutants.json and mutants.md, and the plots where matplotlib is installed; the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "mutants.json", out_dir / "mutants.md"]
    _atomic_write(written[0], json.dumps(doc, indent=1) + "\n")
    _atomic_write(written[1], render_mutant_markdown(doc))
    return written + (plots or write_plots)(doc, out_dir)


def write_plots(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """kill_matrix and time_to_kill as PNG and SVG; [] without matplotlib (the caller prints PLOTS_HINT)."""
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = doc["mutants"]
    rules = sorted({r for m in ms for r in m["killed_by"]} | {m["rule_id"] for m in ms})
    grid = [[m["killed_by"].get(r, 0) / max(1, m["runs"]) for r in rules] for m in ms]
    written: list[Path] = []
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(rules) + 3), max(4, 0.22 * len(ms) + 2)))
    ax.imshow(grid, aspect="auto", cmap="Greens", vmin=0, vmax=1)
    ax.set_xticks(range(len(rules)), rules, rotation=90, fontsize=6)
    ax.set_yticks(range(len(ms)), [m["name"] for m in ms], fontsize=6)
    for i, m in enumerate(ms):
        if m["rule_id"] in rules:
            ax.add_patch(plt.Rectangle((rules.index(m["rule_id"]) - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=0.6))
    ax.set_title("share of runs in which each rule failed (box: the mutant's own rule)", fontsize=8)
    fig.tight_layout()
    written += _save(fig, out_dir / "kill_matrix")
    plt.close(fig)
    times = sorted(t for m in ms for t in m["seconds_to_kill"])
    fig, ax = plt.subplots(figsize=(6, 4))
    if times:
        ax.hist(times, bins=min(40, max(5, len(times) // 5)))
    ax.set_xlabel("seconds to a kill (one unshrunk run)")
    ax.set_ylabel("runs")
    ax.set_title(f"time to kill, {len(times)} killing runs", fontsize=9)
    fig.tight_layout()
    written += _save(fig, out_dir / "time_to_kill")
    plt.close(fig)
    return written


def _save(fig: Any, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for p in paths:
        tmp = p.with_name(p.name + ".tmp")
        fig.savefig(tmp, format=p.suffix[1:], dpi=120)
        os.replace(tmp, p)
    return paths


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

