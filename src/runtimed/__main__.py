"""`python -m runtimed` is the `runtimed` command."""

from runtimed.cli.daemon_cli import main

main()
