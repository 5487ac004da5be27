"""`python -m runtimed` is the `runtimed` command."""

from runtimed.cli.daemon_run import main

main()
