"""kmemspec.harness: the implementation under test: protocol, loading, the lockstep checker, traces, reports.

``Lockstep`` drives an implementation in step with the oracle; ``load_impl``
resolves ``module:factory`` / ``file.py:factory`` / ``c:lib.so`` /
``exec:CMD`` / a bundled name, and any scheme a plugin adds (``hookimpl``,
``plugin_manager``); ``ResolvedMachine`` is a machine read once; ``Env`` is
what an implementation is given. ``adapters`` reach C libraries and other
processes; ``load_expectations`` and ``compare_expectations`` gate CI on an
expectations file. The JSON lines server lives in ``serve``; the command line
is ``kmemspec.cli``, above this package.
"""

from .expectations import Expectations, load_expectations
from .expectations import compare as compare_expectations
from .hookspecs import hookimpl
from .loader import BUNDLED, ImplSpec, build_iut, load_impl, plugin_manager
from .lockstep import Lockstep
from .protocol import CAPABILITY_METHODS, Env, PageAllocator, TransportFailure, validate_iut
from .spelling import ResolvedMachine
from .trace import Ref, Step, dump_trace, load_trace, render_test

__all__ = [
    "BUNDLED",
    "CAPABILITY_METHODS",
    "Env",
    "Expectations",
    "ImplSpec",
    "Lockstep",
    "PageAllocator",
    "Ref",
    "ResolvedMachine",
    "Step",
    "TransportFailure",
    "build_iut",
    "compare_expectations",
    "dump_trace",
    "hookimpl",
    "load_expectations",
    "load_impl",
    "load_trace",
    "plugin_manager",
    "render_test",
    "validate_iut",
]
