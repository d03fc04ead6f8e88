"""Credentials and identity: PEM loading, the node's `TLS`, peer verification, issuing.

Nothing here touches a socket or aioquic: `qrpc.transport` turns these
credentials into QUIC configurations and calls `identity.verify_peer` from
inside the TLS handshake.
"""
