"""``python -m kmemspec.cli`` is the ``kmemspec`` command."""

import sys

from ._main import main

sys.exit(main())
