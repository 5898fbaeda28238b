"""``python -m microweb``: the same as the ``microweb`` command."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
