"""Benchmark a full BPTT gradient against PyTorch eager and JAX: ``python benchmarks/bench.py [--quick] [--sizes ...] [--memory]``.

The same as ``bptt bench``; the code is ``bptt.bench`` (so the installed command can run it).
"""

import sys

from bptt.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
