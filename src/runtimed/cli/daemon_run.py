"""The `runtimed` entry point: `runtimed run ...` starts without importing typer (see
``daemon_start``); every other command (and `run --help`) goes to the typer app."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:  # answered without typer, like `run`
        from runtimed.version import __version__

        print(f"runtimed {__version__}")
        return
    if argv[:1] == ["run"] and not {"-h", "--help"} & set(argv[1:]):
        from runtimed.cli.daemon_start import build_parser, start

        start(**vars(build_parser().parse_args(argv[1:])))
        return
    from runtimed.cli.daemon_cli import main as typer_main

    typer_main()
