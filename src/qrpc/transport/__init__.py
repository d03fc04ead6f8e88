"""The transport: the only socket code -- one UDP `Endpoint` per node and the QUIC
`Connection`s it drives, with mutual TLS verified inside the handshake (`mtls`).
"""
