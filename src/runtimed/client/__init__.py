"""Clients of the daemon: pool/control client and notebook sessions."""

from runtimed.client.async_session import AsyncSession
from runtimed.client.daemon_client import AsyncDaemonClient, DaemonClient
from runtimed.client.session import Session

__all__ = ["AsyncDaemonClient", "AsyncSession", "DaemonClient", "Session"]
