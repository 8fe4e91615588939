"""kmemspec.cli: the composition roots, above ``properties``: the ``kmemspec`` command and the pytest plugin.

``main`` is the ``kmemspec`` command (check, replay, machine, rules, bench,
include-dir; ``python -m kmemspec.cli`` runs it too). ``pytestplugin`` is the
thin ``pytest11`` entry point: it imports nothing of the suite until a
``--kmemspec-*`` option asks for it. This module stays light for that reason:
it imports neither Hypothesis nor the rest of kmemspec.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kmemspec`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    from ._main import main as run

    return run(argv)
