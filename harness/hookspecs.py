"""The hooks a kmemspec plugin may implement (pluggy, project name ``kmemspec``).

A plugin is any object or module with ``@hookimpl``-marked functions of these
names. Installed plugins are found through the ``kmemspec`` entry-point group::

    # pyproject.toml of the plugin
    [project.entry-points.kmemspec]
    wasm = "kmemspec_wasm.plugin"

    # kmemspec_wasm/plugin.py
    from pathlib import Path
    from kmemspec.harness import ImplSpec, hookimpl

    @hookimpl
    def kmemspec_load_impl(spec):
        if not spec.startswith("wasm:"):
            return None                  # not mine: the next plugin, then the built-in loader
        path = spec.removeprefix("wasm:")
        return ImplSpec(spec, "wasm-" + Path(path).stem, WasmFactory(path))   # WasmFactory(machine, env) -> an IUT

Every hook here is called with keyword arguments; an implementation may take
any subset of them (pluggy's rule), so adding an argument later breaks no plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .spelling import ImplSpec

#: The pluggy project name: ``kmemspec`` hooks, plugins in the ``kmemspec`` entry-point group.
PROJECT = "kmemspec"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def kmemspec_load_impl(spec: str, timeout: float, hang_budget: float) -> ImplSpec | None:
    """Resolve an implementation spelling such as ``wasm:alloc.wasm`` to an ``ImplSpec``, or return None.

    Called by ``load_impl`` for every spelling that is not put behind a child
    process by ``--isolate``; the first plugin that returns an ``ImplSpec``
    wins, and when every plugin returns None the built-in loader resolves
    ``fast``, ``reference``, ``MODULE:FACTORY``, ``file.py:FACTORY``, ``c:``,
    ``exec:`` and ``mutant:``. ``timeout`` (seconds per request) and
    ``hang_budget`` are the limits for an implementation the plugin runs in a
    child process (``harness.adapters.ProcessFactory.from_command(cmd, label=...,
    timeout=timeout, hang_budget=hang_budget)``).

    Raise ``refmodel.errors.InvalidDefinition`` with one line for a spelling
    the plugin owns but cannot load: it is printed as a usage error (exit 2).
    Under ``--isolate`` the child process resolves the spelling again, through
    the plugins installed there, so a plugin must be installed (its entry
    point), not only registered in the parent, to be used with ``--isolate``.
    """
