"""In-process: agents' regular expressions run with a time bound in worker processes
(`patterns`), edits built from their matches (`editing`), the save-path checks, and a
bound in every tool argument's schema."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from mcp_host import pattern_workers
from runtimed.mcp_server import editing
from runtimed.mcp_server.arguments import MAX_SOURCE_CHARS
from runtimed.mcp_server.notebooks import Notebooks, check_save_target
from runtimed.mcp_server.patterns import COUNT_LIMIT, PatternRunner
from runtimed.mcp_server.server import build_server

#: Backtracks for ever in `re` ((a+)+$ on 'a' * 40 + 'b' never ends).
CATASTROPHIC = r"(a+)+$"
VICTIM = "a" * 40 + "b"


async def loop_gaps_while(task: asyncio.Task[Any]) -> float:
    """The longest the event loop went without running this coroutine while ``task`` ran."""
    worst, last = 0.0, time.perf_counter()
    while not task.done():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
    return worst


async def test_a_catastrophic_pattern_times_out_and_the_loop_keeps_running() -> None:
    async with PatternRunner(timeout=1.0) as runner:
        await runner.find("a", "a")  # a worker is up: what follows times the pattern only
        started = time.perf_counter()
        task = asyncio.create_task(runner.find(CATASTROPHIC, VICTIM))
        worst_gap = await loop_gaps_while(task)
        with pytest.raises(ToolError) as failed:
            task.result()
        took = time.perf_counter() - started
        message = str(failed.value)
        assert message.startswith("regex_timeout:") and "within 1 s" in message
        assert "41 characters" in message and "nothing changed" in message
        assert 1.0 <= took < 3.0, took
        # A pattern run on the loop would block it for the whole second; 0.5 s leaves room
        # for a loaded machine (two test workers on two cores).
        assert worst_gap < 0.5, worst_gap
        # Its worker was killed; the next pattern gets a working one.
        found = await runner.find(r"b\Z", VICTIM)
        assert found.spans == ((40, 41),) and found.count == 1


async def test_invalid_patterns_and_ones_that_are_hard_for_other_engines() -> None:
    async with PatternRunner() as runner:
        with pytest.raises(ToolError, match="not a valid Python regular expression"):
            await runner.find("(", "x")
        with pytest.raises(ToolError, match="not a valid Python regular expression"):
            await runner.find("a{4294967296}", "x")  # past re's repeat limit
        # A huge repeat compiles at once in `re` (the `regex` package takes GBs for it).
        assert (await runner.find("a{4294967294}", "aaa")).count == 0
        assert (await runner.find("\ud800", "a\ud800b")).spans == ((1, 2),)  # lone surrogate


async def test_matches_are_counted_up_to_a_limit() -> None:
    async with PatternRunner() as runner:
        found = await runner.find("", "x" * 5000)
    assert found.count == COUNT_LIMIT and found.capped and len(found.spans) == 6
    with pytest.raises(ToolError, match=f"matches {COUNT_LIMIT}\\+ times, at line 1"):
        editing.replace_regex("x" * 5000, found, "y")


async def test_a_worker_that_dies_or_a_cancelled_call_leaves_the_runner_working() -> None:
    async with PatternRunner(timeout=30) as runner:
        task = asyncio.create_task(runner.find(CATASTROPHIC, VICTIM))
        deadline = time.monotonic() + 30
        while not pattern_workers() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for child in pattern_workers():
            child.kill()
        with pytest.raises(ToolError, match="regex_failed"):
            await task
        assert (await runner.find("x", "x")).count == 1

        task = asyncio.create_task(runner.find(CATASTROPHIC, VICTIM))
        await asyncio.sleep(0.1)  # let it start: the worker is busy with it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await runner.find("x", "x")).count == 1
    assert pattern_workers() == []  # closed: no worker left behind


def test_literal_edits_overlaps_sizes_and_diffs() -> None:
    with pytest.raises(ToolError, match="matches 2 times"):
        editing.replace_match("aaa", "aa", "b")  # overlapping occurrences are ambiguous
    many = "x = 1\n" * 3000
    with pytest.raises(ToolError, match=r"matches 3000 times, at line 1 .* and 2995 more"):
        editing.replace_match(many, "x = 1", "x = 2")
    big = "a" * (MAX_SOURCE_CHARS - 1) + "b"
    with pytest.raises(ToolError, match=f"at most {MAX_SOURCE_CHARS}"):
        editing.replace_match(big, "b", "bb")
    # The diff looks at the edited lines only: a long cell answers at once.
    long = "".join(f"line {i}\n" for i in range(300_000))
    started = time.perf_counter()
    edit = editing.replace_match(long, "line 150000\n", "changed\n")
    shown = editing.diff(long, edit)
    assert time.perf_counter() - started < 1.0
    assert shown == " line 149999\n-line 150000\n+changed\n line 150001", shown
    added = editing.replace_match("a\nb\n", "b\n", "b\n" + "new\n" * 300)
    assert editing.diff("a\nb\n", added).startswith("(replaced 2 line(s) with 302")


def test_save_refuses_to_write_over_anything_but_a_notebook(tmp_path: Path) -> None:
    text = tmp_path / "notes.ipynb"
    text.write_text("my notes, not JSON")
    with pytest.raises(ToolError, match=r"is not a notebook .* pass force=true"):
        check_save_target(text, None, force=False)
    check_save_target(text, None, force=True)
    json_list = tmp_path / "list.ipynb"
    json_list.write_text("[1, 2]")
    with pytest.raises(ToolError, match="not nbformat JSON"):
        check_save_target(json_list, None, force=False)
    notebook = tmp_path / "real.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)  # type: ignore[no-untyped-call]
    check_save_target(notebook, None, force=False)  # another notebook: replaced, as before
    check_save_target(text, str(text), force=False)  # its own file: the daemon checks
    folder = tmp_path / "dir.ipynb"
    folder.mkdir()
    with pytest.raises(ToolError, match="not a regular file"):
        check_save_target(folder, None, force=True)
    fifo = tmp_path / "pipe.ipynb"
    os.mkfifo(fifo)
    with pytest.raises(ToolError, match="not a regular file"):
        check_save_target(fifo, None, force=True)
    with pytest.raises(ToolError, match="not an existing directory"):
        check_save_target(tmp_path / "no-dir" / "x.ipynb", None, force=False)
    with pytest.raises(ToolError, match=r"cannot use .*too long"):
        check_save_target(tmp_path / ("x" * 300 + ".ipynb"), None, force=False)


def unbounded(schema: dict[str, Any], where: str, defs: dict[str, Any]) -> list[str]:
    """Where a JSON schema lets a value through without a bound."""
    if "$ref" in schema:
        return unbounded(defs[schema["$ref"].rsplit("/", 1)[-1]], where, defs)
    if "anyOf" in schema:
        return [w for option in schema["anyOf"] for w in unbounded(option, where, defs)]
    kind = schema.get("type")
    if "enum" in schema or "const" in schema or kind in ("boolean", "null"):
        return []
    if kind == "string":
        return [] if "maxLength" in schema else [f"{where}: no maxLength"]
    if kind in ("integer", "number"):
        low = "minimum" in schema or "exclusiveMinimum" in schema
        high = "maximum" in schema or "exclusiveMaximum" in schema
        return [] if low and high else [f"{where}: no minimum and maximum"]
    if kind == "array":
        missing = [] if "maxItems" in schema else [f"{where}: no maxItems"]
        return missing + unbounded(schema.get("items", {}), f"{where}[]", defs)
    if kind == "object" and "maxProperties" in schema:
        # Free JSON values (a widget's traits): the tool bounds their encoded size.
        return []
    return [f"{where}: type {kind!r}"]


async def test_every_tool_argument_has_a_bound(tmp_path: Path) -> None:
    async with PatternRunner() as runner, Notebooks(tmp_path / "no-daemon.sock") as notebooks:
        tools = await build_server(notebooks, runner).list_tools()
    assert len(tools) >= 23
    problems = []
    for tool in tools:
        schema = tool.input_schema
        for name, prop in schema.get("properties", {}).items():
            problems += unbounded(prop, f"{tool.name}.{name}", schema.get("$defs", {}))
            if name == "timeout":
                assert prop.get("exclusiveMinimum") == 0 or prop.get("minimum", 0) > 0
    assert problems == []
