"""Adapters: implementations that are not a Python object in this process.

``CLibrary`` loads a C library implementing harness/c/kmemspec_iut.h
(``c:path``); ``ProcessFactory`` drives a program speaking the JSON lines
protocol (``exec:CMD``, and ``--isolate`` for anything else). Both are
factories ``make(machine, env)`` like a Python implementation's.
"""

from .clib import CIut, CLibrary
from .process import HangBudgetExhausted, ProcessFactory, ProcessIut

__all__ = ["CIut", "CLibrary", "HangBudgetExhausted", "ProcessFactory", "ProcessIut"]
