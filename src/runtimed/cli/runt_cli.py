"""`runt`: the command line for pools, runtimes, notebooks and the daemon.

How to add a command (argparse underneath, ``cli/command_line.py``):

1. Write the handler as a plain function in your own module, e.g. ``cli/open_cli.py``::

       def open_notebook(path: str | None, socket: str | None, browser: bool) -> None:
           \"\"\"Open a notebook in the browser.  (first line + rest = its --help text)\"\"\"

   Keep that module's top-level imports light (standard library, ``runtimed.cli.common``);
   import clients and rich inside the function. Errors: ``common.fail("...")`` (one
   ``error:`` line, exit 1) and ``with common.reporting_errors():`` around daemon calls.

2. Register it below with a few lines: the name, ``"module:function"``, a one-line help
   for the command list, and its options; each option's ``dest`` is a keyword argument
   of the handler (``--dry-run`` -> ``dry_run``)::

       runt.command(
           "open", "runtimed.cli.open_cli:open_notebook", "Open a notebook in the browser.",
           opt("path", nargs="?", help="An .ipynb (default: a new notebook)"),
           flag("--no-browser", help="Print the URL only"),
           SOCKET,
       )

   A group: ``trust = runt.group("trust", "Trusted notebooks.")`` then
   ``trust.command("add", ...)``. A new option of an existing command (``--sidecar`` on
   ``runt run``): add ``flag("--sidecar", help=...)`` to its ``command(...)`` call and the
   parameter to its handler. ``opt``/``flag`` take argparse's ``add_argument`` keywords.

Only the chosen command's module is imported and only its parsers are built, so a new
command costs the others nothing. `runt completion bash|zsh|fish` picks it up by itself.
"""

from __future__ import annotations

from runtimed.cli.command_line import Group, bounded_int, flag, opt, run
from runtimed.cli.common import JSON, SOCKET, TOKEN_FILE, URL

runt = Group(
    "runt",
    "Drive the runtimed daemon.",
    [URL, TOKEN_FILE],
    description="Drive the runtimed daemon: pools, rooms, runtimes, settings.",
    setup="runtimed.cli.common:use_remote_daemon",
)

_P = "runtimed.cli.pool_cli:"
_R = "runtimed.cli.runtime_cli:"
_H = "runtimed.cli.history_cli:"
_D = "runtimed.cli.daemon_admin:"
_E = "runtimed.cli.env_cli:"
ENV_SOURCE = opt(
    "--env-source", default="auto", help="For Python: uv:prewarmed, conda:prewarmed, ..."
)
KERNEL = opt("kernel", nargs="?", default="python3", help="A kernelspec name, like python3")

# --- pool, rooms, config -----------------------------------------------------------------
pool = runt.group("pool", "Prewarmed environment pools.")
pool.command("ping", _P + "ping", "Check that the daemon answers.", SOCKET)
pool.command("status", _P + "status", "Available / warming / target / error.", SOCKET, JSON)
pool.command(
    "take", _P + "take", "Take a prewarmed env (it is yours now).",
    opt("env_type", nargs="?", default="uv", metavar="ENV_TYPE", help="uv or conda"),
    SOCKET,
    opt("--timeout", type=float, default=None, help="Max wait for a ready env (s)"),
)  # fmt: skip
pool.command(
    "return", _P + "return_env", "Give an unused env back to its pool.",
    opt("path", help="venv_path of an env you took"), SOCKET,
)  # fmt: skip
pool.command("flush", _P + "flush", "Rebuild every pooled env.", SOCKET)
pool.command("shutdown", _P + "shutdown", "Stop the daemon.", SOCKET)
runt.command("rooms", _P + "rooms", "Open notebook rooms: id, file, peers, kernel.", SOCKET, JSON)
config = runt.group("config", "Daemon settings (synced to every client).")
config.command("show", _P + "config_show", "Print every setting as JSON.", SOCKET)
config.command(
    "get", _P + "config_get", "Print one setting.", opt("key", help="A dotted key"), SOCKET
)
config.command(
    "set", _P + "config_set", "Change a setting.",
    opt("key", help="A dotted key, e.g. uv.pool_size"),
    opt("value", help='JSON (5, true, ["numpy"]) or plain text'),
    SOCKET,
)  # fmt: skip

# --- env -----------------------------------------------------------------------------------
env = runt.group("env", "Environments on disk: list, stats, clean.")
env.command("list", _E + "env_list", "Every env: inline and pooled.", SOCKET, JSON)
env.command("stats", _E + "env_stats", "Disk use by kind: envs, stored rooms, blobs.", SOCKET, JSON)
env.command(
    "clean", _E + "env_clean", "Remove unused inline envs, forgotten rooms, unused blobs.",
    SOCKET,
    flag("--all", help="Every unused inline env"),
    opt("--max-age-days", type=float, help="Unused for more than N days (default: the setting)"),
    flag("--dry-run", help="Only say what would go"),
)  # fmt: skip
env.command(
    "explain", "runtimed.cli.trust_cli:explain", "Which env source a notebook gets, and why.",
    opt("notebook", help="An .ipynb"), JSON,
)  # fmt: skip
runt.command(
    "trust", "runtimed.cli.trust_cli:trust", "Approve a notebook's dependencies; list; revoke.",
    opt("args", nargs="+", metavar="NOTEBOOK|list|revoke NAME", help="What to review"),
    flag("-y", "--yes", help="Approve without asking (scripts)"), ENV_SOURCE, JSON,
)  # fmt: skip

# --- runtimes ------------------------------------------------------------------------------
runt.command(
    "ps", _R + "ps", "Running kernels: id, kernel, pid, status, notebook, env, activity.",
    SOCKET, JSON,
    flag("--all", help="Also kernels in Jupyter's runtime dir not owned here"),
)  # fmt: skip
runt.command(
    "start", _R + "start", "Start a kernel the daemon owns; prints its id.",
    KERNEL, ENV_SOURCE, opt("--cwd", help="The kernel's working directory"), SOCKET,
)  # fmt: skip
runt.command(
    "kill", _R + "kill", "Stop runtimes.",
    opt("runtime_ids", nargs="+", metavar="RUNTIME_ID", help="Runtime ids (or unique prefixes)"),
    SOCKET,
)  # fmt: skip
runt.command(
    "interrupt", _R + "interrupt", "Interrupt the cell a runtime is running.",
    opt("runtime_id", help="A runtime id (or unique prefix)"), SOCKET,
)  # fmt: skip
runt.command(
    "restart", _R + "restart", "Restart a runtime's kernel.",
    opt("runtime_id", help="A runtime id (or unique prefix)"), SOCKET,
)  # fmt: skip
runt.command(
    "run", _R + "run", "An interactive console on a new runtime, or --attach to one.",
    KERNEL, opt("--attach", help="Join a running runtime instead"), ENV_SOURCE, SOCKET,
    flag("--sidecar", help="Also open a browser page showing the rich outputs"),
)  # fmt: skip
runt.command(
    "open", "runtimed.cli.open_cli:open_notebook", "Open a notebook in the browser.",
    opt("path", nargs="?", help="An .ipynb (created if missing)"),
    flag("--new", help="A new untitled notebook"),
    flag("--no-browser", help="Print the one-time login link instead"),
    SOCKET,
)  # fmt: skip

# --- gateway -------------------------------------------------------------------------------
gateway = runt.group("gateway", "The Jupyter Kernel / Enterprise Gateway of gateway.url.")
gateway.command(
    "status", "runtimed.cli.gateway_cli:status", "Reachability and the remote kernelspecs.",
    SOCKET, JSON,
)  # fmt: skip

# --- history -------------------------------------------------------------------------------
history = runt.group(
    "history", "Execution history: every cell run, by anyone.",
    opt("--notebook", help="A notebook id or file path"),
    opt("--runtime", help="A runtime id"),
    opt("--limit", type=int, default=20, help="How many (newest first)"),
    JSON, SOCKET,
    target=_H + "history",
)  # fmt: skip
history.command(
    "show", _H + "history_show", "One execution: source, status, timings, outputs.",
    opt("execution_id", help="A history id (ULID) or execution id"), JSON, SOCKET,
)  # fmt: skip
runt.command(
    "export", _H + "export", "A notebook of a runtime's session, from the history.",
    opt("runtime_id", help="The runtime whose session to export"),
    flag("--notebook", help="Write an .ipynb"),
    opt("-o", "--output", help="File (default: runtime-<id>.ipynb)"),
    SOCKET,
)  # fmt: skip

# --- daemon --------------------------------------------------------------------------------
daemon = runt.group("daemon", "The daemon itself: status, start/stop/restart, logs, checks.")
daemon.command("status", _D + "status", "Version, pid, uptime, pools, rooms, disk.", SOCKET, JSON)
daemon.command("start", _D + "start", "Start the daemon unless it runs.", SOCKET)
daemon.command("stop", _D + "stop", "Stop the daemon and its kernels.", SOCKET)
daemon.command("restart", _D + "restart", "Stop the daemon (if it runs) and start it.", SOCKET)
daemon.command(
    "logs", _D + "logs", "The last lines of the daemon's log; -f follows it.",
    SOCKET,
    opt("-n", "--lines", type=int, default=50, help="How many last lines"),
    flag("-f", "--follow", help="Keep printing new lines until Ctrl-C"),
)  # fmt: skip
daemon.command(
    "doctor", _D + "doctor", "Check socket, lock, files, service, uv, conda, disk, versions.",
    SOCKET,
    flag("--fix", help="Remove stale files (socket, daemon.json, temp files)"),
    JSON,
)  # fmt: skip

# --- agents and shells ---------------------------------------------------------------------
runt.command(
    "mcp", _P + "mcp", "Serve MCP for AI agents (stdio, or --http).",
    SOCKET,
    flag("--http", help="Serve streamable HTTP on 127.0.0.1 instead of stdio"),
    opt("--port", type=bounded_int(1, 65535), default=39218, help="Port for --http"),
    opt(
        "--token", env="RUNTIMED_MCP_TOKEN",
        help="Bearer token --http requires (default: a random one, printed on stderr)",
    ),
)  # fmt: skip
runt.command(
    "completion", _P + "completion", "Print a shell completion script.",
    opt("shell", choices=["bash", "zsh", "fish"], help="bash, zsh or fish"),
)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from runtimed.cli.common import one_line_warnings
    from runtimed.version import __version__

    one_line_warnings()
    run(runt, argv, version=__version__)


if __name__ == "__main__":
    main()
