"""EnvPool in process, with a builder double at the EnvBuilder seam whose builds take
as long as the test says and are slow to stop (as killing uv's process group is)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from env_doubles import BuilderDouble
from runtimed.daemon.envs import EnvPool, PoolSettings


def slow_builder(stop_secs: float = 0.5) -> BuilderDouble:
    """Builds finish when ``finish`` is set and take ``stop_secs`` to stop."""
    return BuilderDouble(finish=asyncio.Event(), stop_secs=stop_secs)


@pytest.fixture
def builder() -> BuilderDouble:
    return slow_builder()


@pytest.fixture
async def pool(builder: BuilderDouble, tmp_path: Path) -> AsyncIterator[EnvPool]:
    pool = EnvPool(builder, tmp_path / "envs", PoolSettings(target=1, replenish_delay_secs=0))
    await pool.start()
    yield pool
    await asyncio.wait_for(pool.close(), 10)


async def test_close_while_a_lowered_pool_stops_its_build(
    pool: EnvPool, builder: BuilderDouble
) -> None:
    # Pool size 0 makes the supervisor cancel the build and wait for it; a shutdown in
    # that wait used to be swallowed with the build's CancelledError, and the supervisor
    # then slept for up to 600 s: the daemon never exited.
    await asyncio.wait_for(builder.build_started.wait(), 5)
    pool.reconfigure(target=0)
    await asyncio.wait_for(builder.stopping.wait(), 5)
    started = time.monotonic()
    await asyncio.wait_for(pool.close(), 5)
    took = time.monotonic() - started
    assert took < builder.stop_secs + 1, f"close() took {took:.1f} s"
    assert pool.status().warming == 0
    assert not builder.started[0].exists()


async def test_close_while_builds_stop(pool: EnvPool, builder: BuilderDouble) -> None:
    await asyncio.wait_for(builder.build_started.wait(), 5)
    await asyncio.wait_for(pool.close(), 5)
    assert builder.stopping.is_set()
    assert not builder.started[0].exists()


async def test_a_cancelled_close_ends_cancelled(pool: EnvPool, builder: BuilderDouble) -> None:
    # Whoever closes the pool and is cancelled meanwhile (a second Ctrl-C) must hear of
    # it, not have it taken for the stopped supervisor's or build's CancelledError.
    await asyncio.wait_for(builder.build_started.wait(), 5)
    pool.reconfigure(target=0)
    await asyncio.wait_for(builder.stopping.wait(), 5)
    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0)  # close() now waits for the supervisor
    closing.cancel()
    await asyncio.wait([closing], timeout=5)
    assert closing.cancelled()


@pytest.mark.parametrize(
    "build_first", [False, True], ids=["cancel-then-build", "build-then-cancel"]
)
async def test_a_cancelled_take_leaves_no_env_behind(
    pool: EnvPool, builder: BuilderDouble, build_first: bool
) -> None:
    # A take cancelled (its client gone) before or just after the build hands it an env:
    # the env must stay the pool's, not sit marked taken in a waiter nobody reads.
    await asyncio.wait_for(builder.build_started.wait(), 5)
    taking = asyncio.create_task(pool.take(timeout=30))
    await asyncio.sleep(0)  # the take now waits for the build
    if build_first:
        builder.finish.set()
        await asyncio.sleep(0)  # the build hands its env to the take's waiter...
    taking.cancel()  # ...and the take is cancelled before it has seen it
    builder.finish.set()
    await asyncio.wait([taking], timeout=5)
    assert taking.cancelled()

    async def ready() -> None:
        while pool.status().available != 1:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(ready(), 5)
    env = await pool.take(timeout=0)
    assert env is not None and Path(env.venv_path) == builder.started[0]


async def test_a_returned_env_stops_the_build_it_makes_surplus(
    pool: EnvPool, builder: BuilderDouble
) -> None:
    builder.finish.set()
    env = await pool.take(timeout=5)
    assert env is not None
    builder.finish.clear()

    async def builds(n: int) -> None:
        while len(builder.started) < n or pool.status().warming != (n - 1):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(builds(2), 5)  # the refill the take started
    started = time.monotonic()
    assert await pool.give_back(env.venv_path) == "returned"
    assert time.monotonic() - started < builder.stop_secs  # not held up by the build
    assert pool.status().available == 1

    async def settled() -> None:
        while pool.status().warming:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(settled(), 5)
    assert builder.stopping.is_set() and not builder.started[1].exists()
    again = await pool.take(timeout=0)
    assert again is not None and again.venv_path == env.venv_path
