"""The node's runtime: links, admission, the peer table, dispatch, requests, dialing.

Each part owns its state and gets narrow callables or small Protocols from
the part above it; none imports `qrpc.node` (``docs/architecture.md``).
"""
