"""``python -m qrpc``: the ``qrpc`` command."""

import sys

from qrpc.cli import main

sys.exit(main())
