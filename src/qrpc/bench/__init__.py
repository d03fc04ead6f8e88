"""Benchmarks shipped with qrpc (``qrpc bench``): codecs today.

The comparison with raw aioquic, NATS, Zenoh and the others lives in the
source tree's ``benchmarks/`` (``make bench``), which uses this package's
timing and tables.
"""
