"""KernelPool in process: started kernels wait for new notebooks of the default source,
warmed up; a hand-out adopts the notebook's directory (through the adoption file) and
the pool refills only when no cell runs; other sources, installed kernelspecs and
kernels that died go elsewhere. Kernels are KernelSessions on kernel_doubles'
FakeBackend, behind a KernelProvider double; no daemon, no env."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import runtimed.daemon.kernels.kernel_pool as kernel_pool_module
from kernel_doubles import FakeBackend
from kernel_provider_double import FakeKernelProvider
from runtimed.daemon.envs.resolver import ResolvedEnv
from runtimed.daemon.kernels.installed import choose_kernel
from runtimed.daemon.kernels.kernel_pool import KernelPool
from runtimed.daemon.kernels.provider import AcquiredKernel, KernelRequest
from runtimed.protocol.control import PooledEnv


@dataclass
class Chooser:
    """``auto`` means what the test says (the resolver's choice)."""

    source: str = "uv:prewarmed"

    async def choose(
        self, metadata: dict[str, Any], notebook_path: str | None, first_code_cell: str | None
    ) -> str:
        return self.source


@dataclass
class Generation:
    generation: int = 0


@dataclass
class Knobs:
    size: int = 1
    busy: bool = False
    default: str = "uv"
    pools: dict[str, Generation] = field(default_factory=lambda: {"uv": Generation()})


@dataclass
class Pool:
    pool: KernelPool
    provider: FakeKernelProvider
    chooser: Chooser
    knobs: Knobs


@pytest.fixture(autouse=True)
def _no_refill_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_pool_module, "REFILL_DELAY_SECS", 0.05)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[Pool]:
    venv = tmp_path / "env"
    env = ResolvedEnv(
        PooledEnv("uv", str(venv), str(venv / "bin/python"), []), "uv:prewarmed", owned=True
    )
    provider = FakeKernelProvider(tmp_path, env)
    chooser, knobs = Chooser(), Knobs()
    kernel_pool = KernelPool(
        provider,
        chooser,
        knobs.pools,
        size=lambda: knobs.size,
        default_env=lambda: knobs.default,
        busy=lambda: knobs.busy,
        pool_dir=tmp_path / "kernel-pool",
    )
    kernel_pool.start()
    yield Pool(kernel_pool, provider, chooser, knobs)
    await asyncio.wait_for(kernel_pool.close(), 10)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def backend_of(provider: FakeKernelProvider, kernel: AcquiredKernel) -> FakeBackend:
    """The FakeBackend a handed-out kernel runs on (each has its own workspace)."""
    workspace = kernel.session.workspace
    (backend,) = [b for b in provider.backends if b.workspace is workspace]
    return backend


def waiting_kernels(pool: Pool, tmp_path: Path) -> list[FakeBackend]:
    """The live kernels waiting in the pool (they start in its waiting rooms)."""
    rooms = tmp_path / "kernel-pool"
    started = zip(pool.provider.requests, pool.provider.backends, strict=True)
    return [b for r, b in started if r.cwd.parent == rooms and not b.exited]


def request(cwd: Path, env_source: str = "auto", **fields: Any) -> KernelRequest:
    return KernelRequest(env_source=env_source, metadata={}, notebook_path=None, cwd=cwd, **fields)


async def test_a_warmed_kernel_is_handed_out_once_and_adopts_the_notebook_dir(
    pool: Pool, tmp_path: Path
) -> None:
    await until(lambda: pool.pool.status().available == 1)
    waiting = pool.provider.backends[0]
    warm_ups = waiting.execution_count
    assert warm_ups >= 3  # its slow first executions ran while it waited

    launched: list[str] = []
    notebook_dir = tmp_path / "notebooks"
    kernel = await pool.pool.acquire(
        request(notebook_dir, on_launching=lambda env: launched.append(env.env_source))
    )
    assert backend_of(pool.provider, kernel) is waiting  # the pooled one, not a new launch
    assert launched == ["uv:prewarmed"]
    workspace = kernel.session.workspace
    assert workspace is not None
    adoption = json.loads((workspace.dir / "adoption.json").read_text())
    assert adoption["cwd"] == str(notebook_dir)  # applied before its first cell
    assert waiting.cwd == notebook_dir  # and restarts start there
    assert waiting.execution_count == warm_ups  # nothing ran at hand-out

    await until(lambda: pool.pool.status().available == 1)  # refilled
    assert len(pool.provider.backends) == 2
    await pool.pool.release(kernel)


async def test_no_refill_while_a_cell_runs(pool: Pool, tmp_path: Path) -> None:
    await until(lambda: pool.pool.status().available == 1)
    pool.knobs.busy = True
    await pool.pool.acquire(request(tmp_path / "a"))
    await asyncio.sleep(0.3)  # several refill delays: nothing may start meanwhile
    assert (pool.pool.status().available, len(pool.provider.backends)) == (0, 1)
    pool.knobs.busy = False
    await until(lambda: pool.pool.status().available == 1)


async def test_other_sources_and_kernelspecs_go_to_the_provider_behind(
    pool: Pool, tmp_path: Path
) -> None:
    await until(lambda: pool.pool.status().available == 1)
    pool.chooser.source = "uv:inline"  # the notebook has its own dependencies
    inline = await pool.pool.acquire(request(tmp_path / "a"))
    bash = await pool.pool.acquire(request(tmp_path / "b", kernel=choose_kernel("python3")))
    assert pool.provider.requests[-2].env_source == "uv:inline"
    assert backend_of(pool.provider, inline) is not pool.provider.backends[0]
    assert backend_of(pool.provider, bash) is not pool.provider.backends[0]
    assert pool.pool.status().available == 1  # the pooled kernel still waits


async def test_a_dead_or_stale_kernel_is_never_handed_out(pool: Pool, tmp_path: Path) -> None:
    await until(lambda: pool.pool.status().available == 1)
    first = pool.provider.backends[0]
    first.die()
    kernel = await pool.pool.acquire(request(tmp_path / "a"))
    assert backend_of(pool.provider, kernel) is not first

    await until(lambda: pool.pool.status().available == 1)
    (waiting,) = waiting_kernels(pool, tmp_path)
    pool.knobs.pools["uv"].generation += 1  # the env pool was flushed
    pool.pool.wake()
    await until(lambda: waiting.exited and pool.pool.status().available == 1)
    assert waiting_kernels(pool, tmp_path) != [waiting]


async def test_a_kernel_heard_from_lately_is_handed_out_without_a_round_trip(
    pool: Pool, tmp_path: Path
) -> None:
    await until(lambda: pool.pool.status().available == 1)
    waiting = pool.provider.backends[0]
    (wire,) = waiting.wires
    sent = list(wire.sent)
    kernel = await pool.pool.acquire(request(tmp_path / "a"))
    assert backend_of(pool.provider, kernel) is waiting
    assert wire.sent == sent  # no kernel_info: it answered its warm-up moments ago
    await pool.pool.release(kernel)


async def test_a_waiting_kernel_that_stops_answering_is_replaced(
    pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_pool_module, "CHECK_SECS", 0.05)
    monkeypatch.setattr(kernel_pool_module, "ADOPT_TIMEOUT_SECS", 0.2)
    await until(lambda: pool.pool.status().available == 1)
    hung = pool.provider.backends[0]
    (wire,) = hung.wires
    await until(lambda: wire.sent.count("kernel_info_request") >= 2)  # asked while it waits
    hung.responsive = False  # alive, but its main loop no longer answers
    pool.pool.wake()
    await until(lambda: len(pool.provider.backends) == 2 and pool.pool.status().available == 1)
    kernel = await pool.pool.acquire(request(tmp_path / "a"))
    assert backend_of(pool.provider, kernel) is pool.provider.backends[1]
    await pool.pool.release(kernel)


async def test_a_smaller_size_discards_and_status_says_so(pool: Pool) -> None:
    pool.knobs.size = 2
    pool.pool.wake()
    await until(lambda: pool.pool.status().available == 2)
    pool.knobs.size = 0
    pool.pool.wake()
    await until(lambda: pool.pool.status().available == 0)
    status = pool.pool.status()
    assert (status.env_source, status.target, status.error) == ("uv:prewarmed", 0, None)
    assert all(backend.exited for backend in pool.provider.backends)
