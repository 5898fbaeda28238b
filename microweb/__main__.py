"""``python -m microweb``: the same as the ``microweb`` command."""

from __future__ import annotations

import sys

from ._cli import main

# NOTE: guarded, so that a tool that imports every module (pydoc, a module walker) runs nothing.
if __name__ == "__main__":
    sys.exit(main())
