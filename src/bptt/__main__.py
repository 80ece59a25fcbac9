"""``python -m bptt``: the same command line as ``bptt``."""

import sys

from .cli import main

sys.exit(main())
