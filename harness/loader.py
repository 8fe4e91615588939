"""Finding and building an implementation from its command-line spelling.

``fast`` and ``reference`` name the bundled allocators; ``pkg.module:make``
imports a module; ``path/to/file.py:make`` loads a file; ``c:path/to/lib.so``
loads a C library (harness/c/kmemspec_iut.h); ``exec:CMD`` starts a program
speaking the JSON lines protocol; ``mutant:NAME`` is a seeded-bug variant of
``fast``. ``isolate=True`` puts any of them in a child process. Every way this
can go wrong ends in one InvalidDefinition line that says what to do.

Plugins add schemes (``wasm:``, ...) through the ``kmemspec_load_impl`` hook
(harness/hookspecs.py), found in the ``kmemspec`` entry-point group; the first
plugin that answers wins, and the built-in spellings above are the fallback.
What a spelling names before it is loaded, and the resolved values
(``ImplSpec``, ``ResolvedMachine``), are in ``spelling``.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import pluggy

from ..refmodel.errors import InvalidDefinition, KmemspecError
from ..refmodel.machine import Machine
from ..refmodel.presets import machine_preset
from . import hookspecs
from .protocol import Env, Factory, TransportFailure, validate_iut
# The spellings and resolved values live in .spelling (the hooks name them too); importable from here as before.
from .spelling import BUNDLED, SCHEMES, ImplSpec, ResolvedMachine, note_plugin_spelling, spec_import_lines  # noqa: F401

_PLUGINS: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The kmemspec plugin manager: the hooks of harness/hookspecs.py, with the ``kmemspec`` entry points loaded (once).

    Register a plugin object in-process with ``plugin_manager().register(obj)``;
    an installed plugin needs only its entry point.
    """
    global _PLUGINS
    if _PLUGINS is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        except Exception as e:  # a broken third-party plugin: say which group, and what to do
            raise InvalidDefinition(
                f"loading the kmemspec plugins (entry-point group {hookspecs.PROJECT!r}) raised {type(e).__name__}: {e}; "
                f"fix or uninstall the plugin named in it"
            ) from None
        _PLUGINS = pm
    return _PLUGINS


def load_impl(spec: str, *, isolate: bool = False, timeout: float | None = None, hang_budget: float | None = None,
              machine: str | ResolvedMachine = "tiny") -> ImplSpec:
    """Resolve ``spec`` to a factory. Raises InvalidDefinition with one line on any failure.

    ``timeout`` (seconds per request) and ``hang_budget`` apply to implementations
    in a child process; ``machine`` is the one an isolated implementation is probed with.
    Plugins (``kmemspec_load_impl``) are asked first; the built-in spellings are the fallback.
    """
    from .adapters.process import DEFAULT_HANG_BUDGET, DEFAULT_TIMEOUT

    limits = {"timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
              "hang_budget": DEFAULT_HANG_BUDGET if hang_budget is None else hang_budget}
    scheme, _, rest = spec.partition(":")
    if scheme == "exec":
        return _load_exec(spec, rest, limits, label=_exec_label(rest))
    if isolate:
        # Nothing of the implementation is loaded here: its module or library may crash
        # as it loads. The child reports a wrong path as a usage error.
        label = _spec_label(spec)
        command = shlex.join([sys.executable, "-m", "kmemspec.harness.serve", spec, "--machine", _child_machine(machine)])
        impl = _load_exec(spec, command, limits, label=label)
        return ImplSpec(spec, label, impl.factory, "process", isolated=True)
    found = _load_from_plugins(spec, limits)
    return found if found is not None else _load_builtin(spec)


def _load_from_plugins(spec: str, limits: dict[str, float]) -> ImplSpec | None:
    """The first plugin's answer to ``kmemspec_load_impl``, or None when no plugin owns ``spec``."""
    try:
        impl = plugin_manager().hook.kmemspec_load_impl(spec=spec, **limits)
    except KmemspecError:
        raise
    except Exception as e:  # a plugin's bug is not a verdict, and not a bug of kmemspec either
        raise InvalidDefinition(f"implementation {spec!r}: a kmemspec plugin's kmemspec_load_impl raised {type(e).__name__}: {e}") from None
    if impl is None:
        return None
    if not isinstance(impl, ImplSpec):
        raise InvalidDefinition(f"implementation {spec!r}: a kmemspec plugin's kmemspec_load_impl returned a {type(impl).__name__}; "
                                f"return an ImplSpec, or None for a spelling it does not own")
    note_plugin_spelling(spec)
    return impl


def _child_machine(machine: str | ResolvedMachine) -> str:
    """The ``--machine`` argument of an isolated child: a preset by name, anything else as the description read here.

    A machine file is written out as it was resolved, so the child probes the
    very machine of the run even if the user's file has changed since.
    """
    if isinstance(machine, str):
        return machine
    try:
        machine_preset(machine.spec)
        return machine.spec
    except KmemspecError:
        pass
    fd, path = tempfile.mkstemp(prefix="kmemspec-machine-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(machine.description, fh)
    atexit.register(Path(path).unlink, missing_ok=True)  # the child is restarted after failures: keep it until exit
    return path


def _load_builtin(spec: str) -> ImplSpec:
    """The spellings kmemspec itself knows (the module docstring)."""
    scheme = spec.partition(":")[0]
    if scheme == "c":
        return _load_c(spec, spec.partition(":")[2])
    if scheme == "mutant":
        return _load_mutant(spec)
    target = BUNDLED.get(spec, spec)
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise InvalidDefinition(
            f"implementation {spec!r}: expected MODULE:FACTORY or path/to/file.py:FACTORY "
            f"(e.g. mypkg.alloc:make), c:path/to/lib.so, exec:COMMAND, or one of {', '.join(BUNDLED)}"
        )
    if module.endswith(".py") or "/" in module or "\\" in module:
        obj = _load_file(spec, Path(module))
    else:
        obj = _import_module(spec, module)
    factory = getattr(obj, attr, None)
    if factory is None:
        names = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n)))
        hint = f"; callables there: {', '.join(names[:8])}" if names else ""
        raise InvalidDefinition(f"implementation {spec!r}: {module} has no attribute {attr!r}{hint}")
    if not callable(factory):
        raise InvalidDefinition(f"implementation {spec!r}: {attr} is a {type(factory).__name__}, not a factory make(machine, env)")
    label = spec if spec in BUNDLED else _label(module, attr)
    return ImplSpec(spec, label, factory)


def _spec_label(spec: str) -> str:
    """The report label of ``spec``, from its spelling alone."""
    scheme, _, rest = spec.partition(":")
    if spec in BUNDLED:
        return spec
    if scheme == "mutant":
        return f"mutant-{rest}"
    if scheme == "c":
        return "c-" + _label(Path(rest).name.split(".")[0], "make")
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise InvalidDefinition(
            f"implementation {spec!r}: expected MODULE:FACTORY or path/to/file.py:FACTORY "
            f"(e.g. mypkg.alloc:make), c:path/to/lib.so, exec:COMMAND, or one of {', '.join(BUNDLED)}"
        )
    return _label(module, attr)


def _load_exec(spec: str, command: str, limits: dict[str, float], *, label: str) -> ImplSpec:
    """``exec:CMD``: a program speaking the JSON lines protocol (docs/protocol.md)."""
    from .adapters.process import ProcessFactory

    if not command.strip():
        raise InvalidDefinition(f"implementation {spec!r}: exec: needs a command, e.g. exec:'./my-allocator --flag'")
    factory = ProcessFactory.from_command(command, label=label, **limits)
    factory.start()
    return ImplSpec(spec, label, factory, "process")


_INTERPRETERS: Final = ("python", "python3", "node", "ruby", "perl", "sh", "bash", "java", "env")


def _exec_label(command: str) -> str:
    """``exec-NAME`` after the program, or after the script an interpreter runs."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    names = [Path(w).name for w in words]
    while len(names) > 1 and (names[0] in _INTERPRETERS or names[0].startswith("python") or names[0].startswith("-")):
        names.pop(0)
    return "exec-" + _label(Path(names[0]).stem if names else "process", "make")


def _load_c(spec: str, path: str) -> ImplSpec:
    """``c:path/to/lib.so``: a library implementing harness/c/kmemspec_iut.h, through ctypes."""
    from .adapters.clib import CLibrary

    if not path:
        raise InvalidDefinition(f"implementation {spec!r}: write c:path/to/liballoc.so")
    label = "c-" + _label(Path(path).name.split(".")[0], "make")
    return ImplSpec(spec, label, CLibrary(path, f"implementation {spec!r}"), "c")


def _load_mutant(spec: str) -> ImplSpec:
    """``mutant:NAME``: a seeded-bug variant of ``fast`` (harness/impls/mutants.py)."""
    from .impls.mutants import MUTANTS

    name = spec.partition(":")[2]
    if name not in MUTANTS:
        raise InvalidDefinition(f"implementation {spec!r}: no such mutant; mutants are {', '.join(sorted(MUTANTS))}")
    return ImplSpec(spec, f"mutant-{name}", MUTANTS[name].factory)


def _label(module: str, attr: str) -> str:
    base = Path(module).stem if module.endswith(".py") else module
    text = base if attr == "make" else f"{base}-{attr}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _import_module(spec: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise InvalidDefinition(
                f"implementation {spec!r}: no module named {e.name!r}; is it installed or on PYTHONPATH? "
                f"For a file, write path/to/file.py:FACTORY"
            ) from None
        raise InvalidDefinition(f"implementation {spec!r}: importing {module} failed: {e}") from None
    except Exception as e:  # the user's module raised while importing
        raise InvalidDefinition(f"implementation {spec!r}: importing {module} raised {type(e).__name__}: {e}") from None


def _load_file(spec: str, path: Path) -> Any:
    if not path.is_file():
        raise InvalidDefinition(f"implementation {spec!r}: file {path} does not exist")
    name = f"_kmemspec_impl_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise InvalidDefinition(f"implementation {spec!r}: {path} is not a Python file")
    mod = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = mod
    try:
        mod_spec.loader.exec_module(mod)
    except Exception as e:
        del sys.modules[name]
        raise InvalidDefinition(f"implementation {spec!r}: loading {path} raised {type(e).__name__}: {e}") from None
    return mod


def build_iut(factory: Factory, machine: Machine, env: Env, label: str) -> tuple[Any, frozenset[str], frozenset[str]]:
    """Call the factory and validate the object; return (iut, capabilities, claims)."""
    try:
        iut = factory(machine, env)
    except (TransportFailure, KmemspecError):
        raise
    except Exception as e:
        raise InvalidDefinition(f"{label}: the factory raised {type(e).__name__}: {e} (it is called as make(machine, env))") from None
    caps, claims = validate_iut(iut, label)
    return iut, caps, claims
