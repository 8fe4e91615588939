"""The rule sets, one module per subsystem: pages (and __get_free_pages), the slab layer, kmalloc, SLUB debugging.

Each module defines ``RuleSet`` subclasses of ``@rule`` methods and registers
each with the capabilities it needs (``properties/_subsystems.py``); importing
this package registers the bundled ones. ``_base`` holds what they share.
"""

# Imported for their registrations; registration order is composition order, as the kernel stacks them.
from . import pages, slab, kmalloc, slab_debug  # noqa: F401  # isort: skip
from ._base import Block, RuleSet, Target
from .pages import PageStateMachine

__all__ = ["Block", "PageStateMachine", "RuleSet", "Target"]
