"""The uv pool against a real daemon building real envs: takes, returns, restarts, GC,
backoff and flush."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import DaemonProcess, wait_until
from runtimed.client import AsyncDaemonClient
from runtimed.client.settings_client import SettingsClient
from runtimed.errors import RuntimedError

pytestmark = pytest.mark.daemon

POOL_1 = ["--uv-pool-size", "1", "--conda-pool-size", "0"]
READY_MARKER = ".runtimed-ready.json"


def env_dirs(d: DaemonProcess) -> set[Path]:
    return set((d.cache_dir / "envs").glob("runtimed-uv-*"))


def available_paths(d: DaemonProcess) -> list[str]:
    """Paths of the ready envs, found by taking them all and giving them back."""
    with d.client() as c:
        taken = []
        while (env := c.take("uv", timeout=0)) is not None:
            taken.append(env.venv_path)
        for path in taken:
            c.return_env(path)
    return taken


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One pool-of-1 daemon for the tests that leave the pool as they found it."""
    d = DaemonProcess(tmp_path_factory.mktemp("pool") / "cache", POOL_1)
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def test_envs_are_built_with_bytecode_compiled(tmp_path: Path) -> None:
    # As users get it (the suite turns it off: ~8 CPU-s a build); one build, taken by no
    # one, so no refill compiles again.
    d = DaemonProcess(tmp_path / "cache", POOL_1)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RUNTIMED_UV_COMPILE_BYTECODE", "1")
        d.start()
    try:
        d.wait_pool("uv", 1)
        (prefix,) = env_dirs(d)
        assert list(prefix.glob("lib/python*/site-packages/ipykernel/__pycache__/*.pyc"))
    finally:
        d.stop()


def test_taken_env_is_usable_and_owned(shared: DaemonProcess) -> None:
    shared.wait_pool("uv", 1)
    with shared.client() as c:
        env = c.take("uv")
        assert env is not None
        try:
            prefix = Path(env.venv_path)
            assert prefix.parent == shared.cache_dir / "envs"
            assert prefix.name.startswith("runtimed-uv-")
            assert env.env_type == "uv"
            assert env.prewarmed_packages[:2] == ["ipykernel", "ipywidgets"]
            assert Path(env.python_path).exists()
            assert (prefix / READY_MARKER).exists()
        finally:
            # "returned" if the refill this take started is still building, else "deleted"
            answer = c.return_env(env.venv_path)
            assert prefix.exists() == (answer == "returned"), answer


def test_fifty_concurrent_takes_get_distinct_envs(shared: DaemonProcess) -> None:
    shared.wait_pool("uv", 1)

    async def take_all() -> list[str | None]:
        async def one() -> str | None:
            async with AsyncDaemonClient(shared.socket_path) as c:
                env = await c.take("uv", timeout=1.0)
                return env.venv_path if env else None

        return await asyncio.gather(*(one() for _ in range(50)))

    results = asyncio.run(take_all())
    got = [r for r in results if r is not None]
    assert got, "at least the ready env must be handed out"
    assert len(got) == len(set(got)), f"an env was handed out twice: {got}"
    with shared.client() as c:
        for path in got:
            c.return_env(path)
        # every env given back is accounted for, none is handed out twice afterwards
        again = []
        while (env := c.take("uv", timeout=0)) is not None:
            again.append(env.venv_path)
        assert len(again) == len(set(again))
        for path in again:
            c.return_env(path)


def test_take_on_empty_pool_waits_for_the_next_env(shared: DaemonProcess) -> None:
    shared.wait_pool("uv", 1)
    with shared.client() as c, shared.client() as c2:
        first = c.take("uv")
        assert first is not None
        # bounded: a short timeout on an empty pool answers `empty`, not an error
        started = time.monotonic()
        assert c2.take("uv", timeout=0.2) is None
        assert time.monotonic() - started < 5
        # a patient take gets the next env as soon as it is built
        second = c2.take("uv", timeout=120)
        assert second is not None and second.venv_path != first.venv_path
        assert Path(second.python_path).exists()
        c.return_env(first.venv_path)
        c.return_env(second.venv_path)


def test_return_puts_back_then_deletes_when_full(shared: DaemonProcess) -> None:
    shared.wait_pool("uv", 1)
    with shared.client() as c:
        # A return counts as "returned" while the refill that the take started is still
        # building; a warm uv cache can finish that refill first (then the pool is full and
        # the return is "deleted", also correct). Try until we return before the refill.
        for _ in range(5):
            shared.wait_pool("uv", 1)
            env = c.take("uv")
            assert env is not None
            if c.return_env(env.venv_path) == "returned":
                break
            assert not Path(env.venv_path).exists()
        else:
            pytest.fail("every refill finished before the return: cannot check 'returned'")
        assert c.status().pools["uv"].available == 1
        assert Path(env.venv_path).exists()
        # returned and taken again: it is the very same env, no rebuild
        again = c.take("uv")
        assert again is not None and again.venv_path == env.venv_path
        shared.wait_pool("uv", 1)  # replenished while we hold it
        assert c.return_env(again.venv_path) == "deleted"  # pool already full
        assert not Path(again.venv_path).exists()
        assert c.status().pools["uv"].available == 1
        with pytest.raises(RuntimedError) as exc:
            c.return_env(again.venv_path)
        assert exc.value.code == "not_found"
    with shared.client() as c:
        for bogus in ("/etc", str(shared.cache_dir / "envs" / "runtimed-uv-..")):
            with pytest.raises(RuntimedError) as exc:
                c.return_env(bogus)
            assert exc.value.code == "invalid_env"


def test_take_from_the_disabled_conda_pool_says_so_at_once(shared: DaemonProcess) -> None:
    # `shared` runs with --conda-pool-size 0 (POOL_1): the one right answer is an error
    # that names the option, at once rather than after the take's timeout.
    with shared.client() as c:
        started = time.monotonic()
        with pytest.raises(RuntimedError) as exc:
            c.take("conda", timeout=30)
        assert time.monotonic() - started < 10
        assert exc.value.code == "pool_disabled"
        assert "conda pool is disabled" in exc.value.message
        assert "--conda-pool-size" in exc.value.message
        conda = c.status().pools["conda"]
        assert (conda.target, conda.available, conda.warming, conda.error) == (0, 0, 0, None)
        c.ping()


def test_flush_rebuilds_everything(shared: DaemonProcess) -> None:
    shared.wait_pool("uv", 1)
    before = set(available_paths(shared))
    assert before
    with shared.client() as c:
        c.flush_pool()
    # None of the old envs is handed out again (a rebuild can be ready already: a build
    # on a warm uv cache without bytecode compiling takes under a second).
    assert not set(available_paths(shared)) & before
    for path in before:
        assert not Path(path).exists()
    shared.wait_pool("uv", 1)
    after = set(available_paths(shared))
    assert after and not after & before


# --- restarts: reuse, GC, package-set change ------------------------------------------


def restart(d: DaemonProcess, *extra: str) -> DaemonProcess:
    d.stop()
    again = DaemonProcess(d.cache_dir, [*POOL_1, *extra])
    return again.start()


def test_restart_reuses_gcs_and_replaces(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "cache", POOL_1).start()
    try:
        d.wait_pool("uv", 1)
        (first,) = env_dirs(d)

        # 1. reuse: the ready env is adopted at once, no rebuild; a half-built one goes
        half_built = first.parent / "runtimed-uv-0123456789ab"
        (half_built / "bin").mkdir(parents=True)
        (half_built / "pyvenv.cfg").write_text("home = /nowhere\n")
        junk = first.parent / "runtimed-uv-NOT_AN_ID"
        junk.mkdir()
        d = restart(d)
        d.wait_pool("uv", 1, timeout=15)
        with d.client() as c:
            assert c.status().pools["uv"].warming == 0
        assert env_dirs(d) == {first}
        assert "reused 1 ready env" in (d.cache_dir / "runtimed.log").read_text()

        # 2. an env older than the max age (2 days) is replaced
        marker = first / READY_MARKER
        record = json.loads(marker.read_text())
        record["created_at"] -= 3 * 24 * 3600
        marker.write_text(json.dumps(record))
        d = restart(d)
        d.wait_pool("uv", 1)
        assert not first.exists()
        (second,) = env_dirs(d)
        assert second != first

        # 3. a different package set: the old env stays until its replacement is ready
        d.stop()
        d = DaemonProcess(d.cache_dir, [*POOL_1, "--uv-package", "packaging"]).start()
        with d.client() as c:
            status = c.status().pools["uv"]
            assert status.available == 0  # never hands out a mismatched env
            assert "packaging" in status.packages
        assert second.exists(), "the mismatched env went before its replacement was ready"
        d.wait_pool("uv", 1)
        wait_until(lambda: not second.exists(), timeout=30, what="the mismatched env to go")
        (third,) = env_dirs(d)
        with d.client() as c:
            env = c.take("uv")
            assert env is not None and env.venv_path == str(third)
            assert "packaging" in env.prewarmed_packages
            c.return_env(env.venv_path)
    finally:
        d.stop()


def test_max_env_age_replaces_envs_while_running(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "cache", [*POOL_1, "--max-env-age", "3"]).start()
    try:
        d.wait_pool("uv", 1)
        ready = [p for p in env_dirs(d) if (p / READY_MARKER).exists()]
        assert ready
        first = ready[0]
        wait_until(lambda: not first.exists(), timeout=30, what="the aged env to be replaced")
        d.wait_pool("uv", 1)
        assert first not in env_dirs(d)
    finally:
        d.stop()


# --- failing builds ---------------------------------------------------------------------


def test_failing_build_backs_off_and_reports(
    daemon_factory: Callable[..., DaemonProcess],
) -> None:
    d = daemon_factory(
        *POOL_1, "--uv-package", "runtimed-no-such-package-xyz", "--backoff-base", "0.5"
    )
    seen: dict[int, float] = {}

    def attempts_reach(n: int) -> bool:
        with d.client() as c:
            error = c.status().pools["uv"].error
        if error is not None:
            seen.setdefault(error.attempts, error.retry_at)
        return error is not None and error.attempts >= n

    wait_until(lambda: attempts_reach(1), timeout=120, what="the first failure")
    with d.client() as c:
        status = c.status().pools["uv"]
        assert status.available == 0
        error = status.error
        assert error is not None
        assert error.step == "install"
        assert "runtimed-no-such-package-xyz" in error.message
        assert error.retry_at > time.time() - 60
        # the daemon keeps serving while its pool fails, and a take says why at once
        # instead of waiting out its timeout
        c.ping()
        started = time.monotonic()
        with pytest.raises(RuntimedError) as failing:
            c.take("uv", timeout=60)
        assert failing.value.code == "pool_failing"
        assert "runtimed-no-such-package-xyz" in failing.value.message
        assert "install" in failing.value.message
        assert time.monotonic() - started < 30
    wait_until(lambda: attempts_reach(3), timeout=120, interval=0.05, what="three attempts")
    # retries back off: later gaps between retry times grow (0.5 s, 1 s, 2 s ... + build);
    # each attempt's status lasts over 0.5 s, polled every 0.05 s
    assert {1, 2, 3} <= seen.keys(), seen
    assert seen[3] - seen[2] > seen[2] - seen[1] - 0.5
    assert not [p for p in env_dirs(d) if (p / READY_MARKER).exists()]  # nothing half-made


@pytest.fixture
def silent_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package index that accepts connections and never answers: a daemon started
    meanwhile has its online install step wait there until the build is stopped."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/simple"
        monkeypatch.setenv("UV_DEFAULT_INDEX", url)
        monkeypatch.setenv("UV_INDEX_URL", url)
        yield url


def test_shutdown_right_after_the_pool_is_set_to_0(
    silent_index: str, daemon_factory: Callable[..., DaemonProcess]
) -> None:
    # Pool size 0 stops the build in flight; a shutdown while the pool waited for that
    # build used to be swallowed, and the daemon slept on for up to 600 s.
    d = daemon_factory(*POOL_1, "--uv-package", "runtimed-no-such-package-xyz")

    def installing_online() -> bool:
        steps = [p.cmdline() for p in d.process.children(recursive=True)]
        return any("install" in argv and "--offline" not in argv for argv in steps)

    wait_until(installing_online, 60, what="the build to wait on the silent index")
    with SettingsClient(d.socket_path) as settings:
        settings.set("uv.pool_size", 0)
    started = time.monotonic()
    d.stop_bound_secs = 10
    d.stop()  # fails unless the daemon exits in time and cleans up after itself
    assert time.monotonic() - started < 10
    assert not env_dirs(d), "the stopped build's dir is left"
