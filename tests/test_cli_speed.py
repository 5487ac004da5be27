"""The CLI's command layer (cli/command_line.py), its tables and completion scripts, and
the fast path: hot commands import neither asyncio, msgspec, pycrdt, rich nor typer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonProcess
from runtimed.cli.command_line import Group, flag, opt, run
from runtimed.cli.text_table import Column, TextTable, wrap

BIN = Path(sys.executable).parent
HEAVY = ("asyncio", "msgspec", "pycrdt", "rich", "typer", "click", "typing", "dataclasses")

# A handler module of its own: the tree below points at it by name.
calls: list[dict[str, object]] = []


def greet(name: str, loud: bool, times: int) -> None:
    """Say hello.

    Said NAME times over."""
    calls.append({"name": name, "loud": loud, "times": times})


def listing(limit: int) -> None:
    calls.append({"listing": limit})


def shown(item: str) -> None:
    calls.append({"shown": item})


def tree() -> Group:
    root = Group("toy", "A toy CLI.", [opt("--where", help="somewhere")])
    root.command(
        "greet",
        f"{__name__}:greet",
        "Say hello.",
        opt("name"),
        flag("--loud"),
        opt("--times", type=int, default=1),
    )
    things = root.group("things", "Things.", opt("--limit", type=int, default=3))
    things.target = f"{__name__}:listing"
    things.command("show", f"{__name__}:shown", "Show one.", opt("item"))
    root.group("empty", "Nothing runs here.").command("x", f"{__name__}:shown", "x", opt("item"))
    return root


def test_a_command_gets_its_options_as_keywords() -> None:
    calls.clear()
    run(tree(), ["--where", "here", "greet", "bob", "--loud", "--times", "3"])
    assert calls == [{"name": "bob", "loud": True, "times": 3}]


def test_a_group_target_runs_without_a_subcommand_and_a_subcommand_with_one() -> None:
    calls.clear()
    run(tree(), ["things", "--limit", "5"])
    run(tree(), ["things", "show", "it"])
    assert calls == [{"listing": 5}, {"shown": "it"}]


def test_help_usage_errors_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run(tree(), ["greet", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: toy greet" in out and "Said NAME times over." in out and "--loud" in out
    with pytest.raises(SystemExit) as done:
        run(tree(), [])  # no command: the help, as typer's no_args_is_help
    assert done.value.code == 0 and "greet" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        run(tree(), ["empty"])
    assert done.value.code == 0 and "x" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        run(tree(), ["nope"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "invalid choice: 'nope'" in err and "greet" in err
    with pytest.raises(SystemExit) as done:
        run(tree(), ["greet", "bob", "--times", "many"])
    assert done.value.code == 2 and "--times" in capsys.readouterr().err
    run(tree(), ["--version"], version="1.2")
    assert capsys.readouterr().out == "toy 1.2\n"


def test_tables_fit_a_width_and_wrap_long_cells() -> None:
    table = TextTable(Column("id", no_wrap=True), "path")
    table.add_row("abc123", "/a/very/long/path/" * 4)
    table.add_row("def456", ("short", "red"))
    wide = table.render(None)
    assert all(len(line) == len(wide.splitlines()[0]) for line in wide.splitlines())
    assert "/a/very/long/path/" * 4 in wide and "\033" not in wide
    narrow = table.render(40).splitlines()
    assert all(len(line) <= 40 for line in narrow) and len(narrow) > 6
    assert "abc123" in narrow[3]  # the no_wrap column keeps its width
    assert "\033[31mshort\033[0m" in table.render(None, colour=True)
    assert wrap("one two three", 7) == ["one two", "three"]
    assert wrap("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_the_control_client_finds_the_same_default_socket_as_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from runtimed.client.control_client import default_socket_path
    from runtimed.paths import default_socket_path as from_paths

    for name in ("RUNTIMED_SOCKET_PATH", "RUNTIMED_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert default_socket_path() == str(from_paths())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_socket_path() == str(from_paths())
    monkeypatch.setenv("RUNTIMED_CACHE_DIR", "~/somewhere")
    assert default_socket_path() == str(from_paths())
    monkeypatch.setenv("RUNTIMED_SOCKET_PATH", str(tmp_path / "s.sock"))
    assert default_socket_path() == str(from_paths())


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    r = subprocess.run(
        [str(BIN / "runt"), "completion", shell], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    for word in ("pool", "ping", "json", "history", "socket", "completion"):
        assert word in r.stdout
    if shutil.which(shell):
        check = subprocess.run([shell, "-n"], input=r.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_subcommands_and_options() -> None:
    script = subprocess.run(
        [str(BIN / "runt"), "completion", "bash"], capture_output=True, text=True, timeout=60
    ).stdout
    probe = (
        script
        + "\nCOMP_WORDS=(runt pool st); COMP_CWORD=2; _runt_complete; echo ${COMPREPLY[@]}"
        + "\nCOMP_WORDS=(runt pool status --j); COMP_CWORD=3; _runt_complete;"
        + " echo ${COMPREPLY[@]}"
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout
    assert out.splitlines() == ["status", "--json"]


def imported_by(
    argv: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a CLI command in a fresh interpreter; which of HEAVY it imported."""
    probe = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        f"from runtimed.cli.{'runt_cli' if argv[0] == 'runt' else 'daemon_cli'} import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        f"print('IMPORTED', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    line = next(x for x in r.stderr.splitlines() if x.startswith("IMPORTED"))
    return r, json.loads(line.split(" ", 1)[1].replace("'", '"'))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("speed") / "cache", ["--uv-pool-size", "0"])
    d.start()
    yield d
    d.stop()


@pytest.mark.daemon
@pytest.mark.parametrize(
    "argv",
    [
        ["runt", "ps"],
        ["runt", "pool", "ping"],
        ["runt", "pool", "status"],
        ["runt", "pool", "status", "--json"],
        ["runt", "rooms"],
        ["runt", "history"],
        ["runtimed", "status"],
        ["runtimed", "status", "--json"],
    ],
    ids="-".join,
)
def test_hot_commands_import_nothing_heavy(daemon: DaemonProcess, argv: list[str]) -> None:
    env = {**os.environ, "RUNTIMED_CACHE_DIR": str(daemon.cache_dir)}
    env.pop("RUNTIMED_URL", None)
    r, heavy = imported_by(argv, env)
    assert r.returncode == 0, r.stderr
    assert heavy == [], f"{' '.join(argv)} imported {heavy}"


def test_a_stopped_daemon_is_one_line_without_heavy_imports(tmp_path: Path) -> None:
    env = {**os.environ, "RUNTIMED_CACHE_DIR": str(tmp_path), "RUNTIMED_NO_AUTOSTART": "1"}
    env.pop("RUNTIMED_URL", None)
    r, heavy = imported_by(["runt", "ps"], env)
    assert r.returncode == 2 and heavy == []
    assert r.stderr.splitlines()[0].startswith("error: runtimed is not running")
