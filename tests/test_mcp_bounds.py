"""Hostile tool arguments against `runt mcp` (the SDK's stdio client, a real daemon): a
regex cannot hang the server, every argument is bounded and refused before anything
reaches the daemon, and random JSON for any tool's arguments always gets an answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp.client.client import Client

from helpers import DaemonProcess
from mcp_host import Agent, all_text, pattern_workers, start_agent
from runtimed.client import AsyncSession
from runtimed.mcp_server.notebooks import Notebooks
from runtimed.mcp_server.patterns import PatternRunner
from runtimed.mcp_server.server import build_server

pytestmark = [pytest.mark.daemon, pytest.mark.asyncio(loop_scope="module")]

#: Backtracks for ever in `re`: more than 5 s at 30 characters, never ends at 40.
CATASTROPHIC = r"(a+)+$"
VICTIM = "a" * 40 + "b"
#: What any call may take here: the pattern bound (1 s) and a loaded machine's slack.
CALL_BOUND = 5.0
#: A notebook that is never open: the fuzz sends it to the tools that would start a kernel.
NOT_OPEN = "fuzz-never-open.ipynb"


@pytest.fixture(scope="module")
def bounds_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # No kernel runs here: no pool to build.
    d = DaemonProcess(tmp_path_factory.mktemp("bounds") / "cache", ["--uv-pool-size", "0"])
    d.start()
    yield d
    d.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(
    bounds_daemon: DaemonProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Agent]:
    a = await start_agent(bounds_daemon, tmp_path_factory.mktemp("agent-cwd"))
    yield a
    await a.close()


def server_cwd(agent: Agent) -> Path:
    return agent.errlog.parent


def rooms(daemon: DaemonProcess) -> int:
    with daemon.client() as c:
        return len(c.list_rooms())


async def test_a_catastrophic_pattern_fails_with_regex_timeout_while_the_server_answers(
    agent: Agent, tmp_path: Path
) -> None:
    await agent.ok("create_notebook", path=str(tmp_path / "regex.ipynb"), start_kernel=False)
    _, info, _ = await agent.ok("create_cell", source=VICTIM)
    cid = info["cell_id"]
    for _ in range(2):  # both pattern workers are up: what follows times the pattern
        await agent.ok("replace_regex", cell_id=cid, pattern=r"b\Z", content="b")

    started = time.perf_counter()
    call = asyncio.create_task(
        agent.call("replace_regex", cell_id=cid, pattern=CATASTROPHIC, content="x")
    )
    latencies = []
    while not call.done():
        asked = time.perf_counter()
        text, _, _ = await agent.ok("get_all_cells")
        latencies.append(time.perf_counter() - asked)
        assert VICTIM in text
    failed_after = time.perf_counter() - started
    result = await call
    message = all_text(result)
    print(
        f"\ncatastrophic pattern failed after {failed_after:.3f} s; {len(latencies)} "
        f"get_all_cells meanwhile, slowest {max(latencies) * 1000:.1f} ms"
    )
    assert result.is_error and "regex_timeout" in message and "within 1 s" in message
    assert 1.0 <= failed_after < CALL_BOUND
    assert len(latencies) >= 3 and max(latencies) < 0.2, latencies
    text, _, _ = await agent.ok("get_cell", cell_id=cid)
    assert VICTIM in text  # nothing changed
    await agent.ok("replace_regex", cell_id=cid, pattern=r"b\Z", content="c")
    text, _, _ = await agent.ok("get_cell", cell_id=cid)
    assert "a" * 40 + "c" in text


async def test_every_bound_is_refused_before_the_daemon_with_the_bound_named(
    agent: Agent, bounds_daemon: DaemonProcess
) -> None:
    before = rooms(bounds_daemon)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("create_cell", {"source": "x" * 10_000_001}, "at most 10000000 characters"),
        ("set_cell", {"cell_id": "c", "source": "", "timeout": 0}, "greater than 0"),
        ("execute_cell", {"cell_id": "c", "timeout": 3601}, "less than or equal to 3600"),
        ("execute_cell", {"cell_id": "c", "timeout": -1}, "greater than 0"),
        ("run_all_cells", {"timeout": 1e300}, "less than or equal to 3600"),
        ("sync_environment", {"timeout": 0.5}, "greater than or equal to 1"),
        ("get_all_cells", {"start": 10**30}, "less than or equal to 1000000"),
        ("get_cell", {"cell_id": "c", "output_index": 0, "offset": 2**41}, "less than or equal"),
        ("get_cell", {"cell_id": "c" * 201}, "at most 200 characters"),
        ("get_cell", {"cell_id": ""}, "at least 1 character"),
        ("get_cell", {"cell_id": "c", "notebook": "n" * 4097}, "at most 4096 characters"),
        ("open_notebook", {"path": "p" * 4097}, "at most 4096 characters"),
        ("get_results", {"execution_id": "e" * 101}, "at most 100 characters"),
        ("add_dependency", {"package": ["a"] * 201}, "at most 200 items"),
        ("add_dependency", {"package": "a" * 201}, "at most 200 characters"),
        ("replace_regex", {"cell_id": "c", "pattern": "a" * 10_001, "content": ""}, "10000"),
        ("replace_regex", {"cell_id": "c", "pattern": "", "content": ""}, "at least 1"),
        ("move_cell", {"cell_id": "c", "index": 10**7}, "less than or equal to 1000000"),
        ("get_cell", {"cell_id": "c", "colour": "red"}, "no argument(s) 'colour'"),
    ]
    for tool, args, expected in cases:
        assert expected in await agent.error(tool, **args), (tool, expected)
    assert rooms(bounds_daemon) == before  # nothing was opened or created


async def test_paths_resolve_against_the_server_cwd_and_never_replace_other_files(
    agent: Agent, tmp_path: Path
) -> None:
    cwd = server_cwd(agent)
    _, info, _ = await agent.ok("create_notebook", path="made.ipynb", start_kernel=False)
    assert info["path"] == str(cwd / "made.ipynb") and (cwd / "made.ipynb").is_file()
    await agent.ok("create_cell", source="print('mine')")
    _, info, _ = await agent.ok("save_notebook", path="copy.ipynb")
    assert info["path"] == str(cwd / "copy.ipynb")

    notes = tmp_path / "notes.ipynb"
    notes.write_text("my notes, not a notebook")
    message = await agent.error("save_notebook", path=str(notes))
    assert "is not a notebook" in message and "force=true" in message
    assert notes.read_text() == "my notes, not a notebook"
    await agent.ok("save_notebook", path=str(notes), force=True)
    assert nbformat.read(notes, as_version=4).cells[0].source == "print('mine')"  # type: ignore[no-untyped-call]

    (tmp_path / "dir.ipynb").mkdir()
    assert "not a regular file" in await agent.error(
        "save_notebook", path=str(tmp_path / "dir.ipynb"), force=True
    )
    assert "must end in .ipynb" in await agent.error("save_notebook", path="notes.txt")
    # A link named .ipynb is judged by what it points at.
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "target.txt")
    assert "must end in .ipynb" in await agent.error(
        "save_notebook", path=str(tmp_path / "link.ipynb")
    )
    too_long = str(tmp_path / ("x" * 300 + ".ipynb"))
    for tool in ("open_notebook", "create_notebook", "save_notebook"):
        message = await agent.error(tool, path=too_long)
        assert "cannot use" in message and "lost the connection" not in message, message


async def test_a_cell_edited_while_its_pattern_runs_is_edited_as_it_is_now(
    bounds_daemon: DaemonProcess, tmp_path: Path
) -> None:
    # In-process server (the SDK's client over memory streams) with a long pattern bound:
    # the pattern below runs for a while, and a person edits the cell meanwhile.
    path = tmp_path / "race.ipynb"
    socket = bounds_daemon.socket_path
    async with (
        PatternRunner(timeout=120) as runner,
        Notebooks(socket, recent_path=tmp_path / "recent.json") as notebooks,
        Client(build_server(notebooks, runner)) as client,
    ):
        await client.call_tool("create_notebook", {"path": str(path), "start_kernel": False})
        made = await client.call_tool("create_cell", {"source": "a" * 22 + "b"})
        cid = (made.structured_content or {})["cell_id"]
        person = await AsyncSession(socket_path=socket, path=path).connect()
        try:
            args = {"cell_id": cid, "pattern": r"(a+)+$|^done$", "content": "X"}
            call = asyncio.create_task(client.call_tool("replace_regex", args))
            deadline = time.monotonic() + 60
            while not any(w.cpu_times().user > 0.1 for w in pattern_workers()):
                assert time.monotonic() < deadline and not call.done(), "the pattern never ran"
                await asyncio.sleep(0.01)
            await person.set_source(cid, "done")
            result = await call
            assert not result.is_error, all_text(result)
            deadline = time.monotonic() + 10
            while (await person.get_cell(cid)).source != "X":
                assert time.monotonic() < deadline, (await person.get_cell(cid)).source
                await asyncio.sleep(0.01)
        finally:
            await person.close()


# --- random JSON for every tool's arguments --------------------------------------------

#: Arguments that would start a kernel or run code: the fuzz keeps them harmless (the
#: tests of test_mcp.py run code); everything else is random.
HARMLESS: dict[str, dict[str, Any]] = {
    "open_notebook": {"start_kernel": False},
    "create_notebook": {"start_kernel": False},
    "create_cell": {"run": False},
    "set_cell": {"run": False},
    "replace_match": {"run": False},
    "replace_regex": {"run": False},
    "execute_cell": {"notebook": NOT_OPEN},
    "run_all_cells": {"notebook": NOT_OPEN},
    "restart_kernel": {"notebook": NOT_OPEN},
    "sync_environment": {"notebook": NOT_OPEN},
    "close_notebook": {"notebook": NOT_OPEN},
    "set_widget_state": {"notebook": NOT_OPEN},  # no widget lives here (test_widgets.py)
    "send_widget_message": {"notebook": NOT_OPEN},
}
#: The most hostile values first: every argument of every tool gets each (the sweep).
NASTY: list[Any] = [
    "\x00", "", " \n", None, [], {}, -1, 2**70, 1e308, 1.5, True, "a" * 20_000,
    CATASTROPHIC, "../../../../etc/passwd", "~", "/", "x.ipynb", "\\Z", "(",
]  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(NASTY),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@dataclass(frozen=True)
class Fuzz:
    """The tools and their argument names, the fuzz notebook and its cell ids."""

    params: dict[str, list[str]]
    path: str
    cell_ids: list[str]

    def valid(self, tool: str) -> dict[str, Any]:
        """Arguments the tool accepts, so a random one in their place reaches its code."""
        cell = self.cell_ids[0]
        valid: dict[str, dict[str, Any]] = {
            "open_notebook": {"path": self.path},
            "get_cell": {"cell_id": cell},
            "set_cell": {"cell_id": cell, "source": "x = 1"},
            "delete_cell": {"cell_id": NOT_OPEN},  # the cells stay for the other tools
            "move_cell": {"cell_id": cell, "index": 0},
            "replace_match": {"cell_id": cell, "match": "x", "content": "x"},
            "replace_regex": {"cell_id": cell, "pattern": "^x", "content": "x"},
            "execute_cell": {"cell_id": cell},
            "get_results": {"execution_id": "exec-0000"},
            "add_dependency": {"package": "psutil"},
            "remove_dependency": {"package": "psutil"},
        }
        return (
            {"notebook": self.path} | valid.get(tool, {})
            if "notebook" in self.params[tool]
            else valid.get(tool, {})
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzz(agent: Agent, tmp_path_factory: pytest.TempPathFactory) -> Fuzz:
    assert agent.session is not None
    listed = (await agent.session.list_tools()).tools
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.ipynb"
    await agent.ok("create_notebook", path=str(path), start_kernel=False)
    cell_ids = []
    for source in ("x = 1\nx = 1\n", "# notes", VICTIM):
        _, info, _ = await agent.ok("create_cell", source=source)
        cell_ids.append(info["cell_id"])
    params = {t.name: sorted(t.input_schema.get("properties", {})) for t in listed}
    return Fuzz(params, str(path), cell_ids)


async def answered(agent: Agent, tool: str, args: dict[str, Any]) -> bool:
    """Call a tool, checking it answers within CALL_BOUND and, if it refuses, says why;
    whether it did what it was asked."""
    assert agent.session is not None
    args = args | HARMLESS.get(tool, {})
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(
            agent.session.call_tool(tool, args, read_timeout_seconds=60), CALL_BOUND
        )
    except TimeoutError:
        raise AssertionError(f"{tool}({args!r:.300}) no answer within {CALL_BOUND} s") from None
    took = time.perf_counter() - started
    text = all_text(result)
    assert text.strip(), f"{tool}({args!r:.300}) answered nothing"
    # A crash comes back as the bare "Error executing tool X": every refusal says why.
    assert text != f"Error executing tool {tool}", f"{tool}({args!r:.300}) crashed"
    assert "unexpected exception" not in agent.errlog.read_text(), agent.errlog.read_text()
    assert took < CALL_BOUND
    return not result.is_error


async def test_every_argument_of_every_tool_takes_hostile_values(agent: Agent, fuzz: Fuzz) -> None:
    # send_input: no cell waits for input here, so even a well-formed answer is refused.
    refused = {"get_results", "delete_cell", "send_input"} | {
        t for t, a in HARMLESS.items() if "notebook" in a
    }
    calls = 0
    for tool, names in fuzz.params.items():
        # The valid arguments work, so each hostile value replaces a good one.
        assert await answered(agent, tool, fuzz.valid(tool)) or tool in refused, tool
        for name in names:
            for value in NASTY:
                await answered(agent, tool, fuzz.valid(tool) | {name: value})
                calls += 1
    assert calls > 500


def arguments(fuzz: Fuzz, tool: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid arguments with any of them replaced by random JSON, or dropped; sometimes
    one more argument with a random name."""
    names = fuzz.params[tool]
    random = st.fixed_dictionaries({}, optional={name: JSON for name in names})
    dropped = st.sets(st.sampled_from(names)) if names else st.just(set())
    extra = st.dictionaries(st.text(max_size=12), JSON, min_size=1, max_size=1)
    none: st.SearchStrategy[dict[str, Any]] = st.just({})

    def build(parts: tuple[dict[str, Any], set[str], dict[str, Any]]) -> dict[str, Any]:
        replaced, gone, more = parts
        kept = {k: v for k, v in fuzz.valid(tool).items() if k not in gone}
        return more | kept | replaced

    return st.tuples(random, dropped, none | none | none | extra).map(build)


@settings(
    max_examples=150,
    deadline=None,  # each call has its own bound, CALL_BOUND
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_json_arguments_always_get_an_answer_within_the_bound(
    agent: Agent, fuzz: Fuzz, data: st.DataObject
) -> None:
    tool = data.draw(st.sampled_from(sorted(fuzz.params)), label="tool")
    args = data.draw(arguments(fuzz, tool), label="arguments")
    done = await answered(agent, tool, args)
    event(f"{tool}: {'done' if done else 'refused'}")
