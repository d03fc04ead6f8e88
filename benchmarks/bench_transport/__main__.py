"""``python -m benchmarks.bench_transport``: the transport sections of ``python -m benchmarks``."""

from __future__ import annotations

import sys

from benchmarks.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "transport,peers,alternatives", *sys.argv[1:]]))
