"""The sans-IO wire layer: frames, the incremental decoder and the per-link protocol.

Nothing in this package touches a socket, a clock or the event loop.
"""

from qrpc.wire.decoder import FrameDecoder as FrameDecoder
from qrpc.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE as HEADER_SIZE,
    PROTOCOL_VERSION as PROTOCOL_VERSION,
    Frame as Frame,
    FrameKind as FrameKind,
    encode_frame as encode_frame,
)
from qrpc.wire.hello import Hello as Hello
from qrpc.wire.link import LinkProtocol as LinkProtocol, LinkState as LinkState

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "PROTOCOL_VERSION",
    "Frame",
    "FrameDecoder",
    "FrameKind",
    "Hello",
    "LinkProtocol",
    "LinkState",
    "encode_frame",
]
