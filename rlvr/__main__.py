"""Run the ``rlvr`` command line: ``python -m rlvr ...`` is the same as ``rlvr ...``."""

import sys

from rlvr.cli import main

if __name__ == "__main__":
    sys.exit(main())
