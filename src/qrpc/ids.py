"""Node IDs: what a valid one looks like, and how a new one is made.

A node ID is one DNS label, because it travels inside a certificate as the
identity SAN ``<node-id>.node.<domain>`` (see ``docs/security.md``).  IDs
are compared case-insensitively and kept in lower case, the form they have
in DNS.  New IDs are ULIDs: 26 Crockford base32 characters, sortable by
creation time.
"""

from __future__ import annotations

import re
from typing import Final

from ulid import ULID

__all__ = ["MAX_NODE_ID_LENGTH", "is_node_id", "new_node_id", "normalize_node_id"]

MAX_NODE_ID_LENGTH: Final = 63  # characters: the DNS label limit (RFC 1035)
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def new_node_id() -> str:
    """Return a fresh node ID: a ULID in lower case."""
    return str(ULID()).lower()


def is_node_id(value: str) -> bool:
    """Tell whether `value` is a valid node ID in canonical (lower-case) form."""
    return _LABEL.fullmatch(value) is not None


def normalize_node_id(value: str) -> str:
    """Return the canonical form of `value`, or raise ValueError if it is not a node ID."""
    if not isinstance(value, str):
        raise ValueError(f"a node ID must be a str, not {type(value).__name__}")
    canonical = value.lower()
    if not is_node_id(canonical):
        raise ValueError(
            f"{value!r} is not a node ID: use 1-63 letters, digits or '-', "
            "not starting or ending with '-'"
        )
    return canonical
