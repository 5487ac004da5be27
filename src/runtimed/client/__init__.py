"""Clients of the daemon: pool/control client now, notebook sessions next."""

from runtimed.client.daemon_client import AsyncDaemonClient, DaemonClient

__all__ = ["AsyncDaemonClient", "DaemonClient"]
