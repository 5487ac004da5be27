"""Execution history: every execution and runtime, durable in SQLite."""

from runtimed.daemon.history.log import HistoryLog
from runtimed.daemon.history.store import HistoryStore, Retention

__all__ = ["HistoryLog", "HistoryStore", "Retention"]
