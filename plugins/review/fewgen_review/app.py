"""Serving a dataset in the FiftyOne App, on an address and port the user controls."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from fewgen.errors import UsageError

if TYPE_CHECKING:
    import fiftyone as fo

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5151


def check_port_free(address: str, port: int) -> None:
    """Fail with a one-line message when ``address:port`` cannot be served on.

    FiftyOne itself would silently attach to whatever App already answers there (possibly
    another user's, showing other data), so the port must be free before it launches.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise UsageError(
                f"cannot serve the App on {address}:{port} ({exc.strerror}); choose another --port"
            ) from None


def app_url(address: str, port: int) -> str:
    return f"http://{address}:{port}/"


def launch(dataset: fo.Dataset, address: str, port: int) -> fo.Session:
    """Start the App server for ``dataset``; it answers ``GET /fiftyone`` once this returns."""
    import fiftyone as fo

    check_port_free(address, port)
    # FiftyOne logs instructions for ssh port forwarding and a banner; fewgen prints the URL itself.
    logging.getLogger("fiftyone.core.session").setLevel(logging.WARNING)
    return fo.launch_app(dataset, remote=True, address=address, port=port)
