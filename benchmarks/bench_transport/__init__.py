"""Transport benchmarks: qrpc against raw aioquic and the alternatives, one process per side.

Run ``python -m benchmarks --only transport`` (or ``python -m
benchmarks.bench_transport``, the same thing); see ``benchmarks/README.md``.
"""
