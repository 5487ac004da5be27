"""Runtimes: the kernels the daemon owns, by short id (``runt ps``)."""

from runtimed.daemon.runtimes.registry import RuntimeRegistry

__all__ = ["RuntimeRegistry"]
