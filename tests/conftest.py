"""Shared fixtures: real daemons in temp dirs, never touching ~/.cache or ~/.ipython.

The helpers themselves (``DaemonProcess``, ``wait_until``) are in helpers.py, which the
benches use too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import helpers
from helpers import DaemonProcess

#: The slow tier: tests that start a real daemon or kernel carry ``@pytest.mark.daemon``
#: (or a module-level ``pytestmark``). ``pytest -m "not daemon"`` runs the in-process
#: tier; a test there that starts a real daemon or kernel fails, naming the marker.
_tier: dict[str, str | None] = {"test": None}


def _check_tier(what: str) -> None:
    test = _tier["test"]
    if test is not None:
        raise AssertionError(
            f"{test} starts {what} but is not marked daemon: add @pytest.mark.daemon "
            "(or move it to the in-process tier with a test double)"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture of the item, module-scoped ones included, is set up.
    _tier["test"] = None if item.get_closest_marker("daemon") else item.nodeid


@pytest.fixture(scope="session", autouse=True)
def _tier_guard() -> Iterator[None]:
    """Real daemons and kernels started by an unmarked test fail it."""
    from jupyter_client.provisioning import local_provisioner

    launch = local_provisioner.launch_kernel

    def guarded_launch(*args: object, **kwargs: object) -> object:
        _check_tier("a kernel")
        return launch(*args, **kwargs)

    helpers.before_real_process = _check_tier
    local_provisioner.launch_kernel = guarded_launch
    yield
    local_provisioner.launch_kernel = launch


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One uv cache for the session (first build online, the rest offline) and no
    writes to the user's cache, config or IPython dirs."""
    base = tmp_path_factory.mktemp("session-env")
    saved = dict(os.environ)
    # pytest-xdist's workers (README: -n 2) share one uv cache: the run's basetemp parent.
    shared = tmp_path_factory.getbasetemp().parent if "PYTEST_XDIST_WORKER" in os.environ else base
    os.environ["UV_CACHE_DIR"] = os.environ.get("RUNTIMED_TEST_UV_CACHE", str(shared / "uv-cache"))
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    os.environ["RUNTIMED_CACHE_DIR"] = str(base / "default-cache-unused")
    os.environ["RUNTIMED_CONFIG_DIR"] = str(base / "config")
    os.environ["IPYTHONDIR"] = str(base / "ipython")
    # Envs are built without compiling all of site-packages (~8 CPU-s a build, most of the
    # daemon tier's time on 2 cores); kernels compile what they import instead (~0.8 s).
    os.environ.setdefault("RUNTIMED_UV_COMPILE_BYTECODE", "0")
    # A test that finds no daemon must see that, not start one: tests of auto-start turn
    # it back on for their own clients.
    os.environ["RUNTIMED_NO_AUTOSTART"] = "1"
    os.environ.pop("RUNTIMED_SOCKET_PATH", None)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons: ``daemon_factory("--uv-pool-size", "1", cache_dir=...)``."""
    started: list[DaemonProcess] = []

    def make(*args: str, cache_dir: Path | None = None, wait: bool = True) -> DaemonProcess:
        d = DaemonProcess(cache_dir or tmp_path / "cache", list(args))
        started.append(d)
        return d.start(wait=wait)

    yield make
    failures: list[AssertionError] = []
    for d in started:  # every daemon is stopped even when one fails to stop cleanly
        try:
            d.stop()
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A running daemon with a uv pool of 1 (most tests need no more)."""
    return daemon_factory("--uv-pool-size", "1")
