"""The `runtimed` entry point (``runtimed.cli.daemon_cli``'s command tree)."""

from __future__ import annotations


def main() -> None:
    from runtimed.cli.daemon_cli import main as run_command

    run_command()
