"""``python -m kmemspec.harness`` is the ``kmemspec`` command."""

import sys

from .cli import main

sys.exit(main())
