"""The conda pool: real py-rattler solve + install + pool + take, against a local channel.

conda-forge is unreachable from here and CI, so ``conda_channel.build_channel`` makes a
``file://`` channel (a ``python`` wrapping this interpreter, noarch ``ipykernel`` /
``ipywidgets`` shims that expose the host's ipykernel) and indexes it with rattler.
"""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conda_channel import build_channel
from helpers import DaemonProcess, wait_until
from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.errors import RuntimedError
from runtimed.protocol.control import PooledEnv, PoolError

EXTRA_PACKAGES = [
    ("needs-new-python", "1.0", ["python >=99"]),
    ("needs-missing", "1.0", ["not-here"]),
    ("conda-extra", "1.0", []),
]

DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture(scope="module")
def channel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("conda-channel")
    build_channel(path, extra=EXTRA_PACKAGES)
    return path


@pytest.fixture(scope="module")
def channel(channel_dir: Path) -> str:
    return channel_dir.as_uri()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_channel(channel_dir: Path) -> Iterator[str]:
    """The same channel over HTTP on 127.0.0.1 (like a real channel or a mirror)."""
    handler = functools.partial(_QuietHandler, directory=str(channel_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def conda_args(channel: str, *extra: str, size: int = 1, uv: int = 0) -> list[str]:
    return [
        "--uv-pool-size",
        str(uv),
        "--conda-pool-size",
        str(size),
        "--conda-channel",
        channel,
        "--backoff-base",
        "1",
        *extra,
    ]


def run_python(env: PooledEnv, code: str) -> str:
    out = subprocess.run(
        [env.python_path, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def wait_error(d: DaemonProcess, env_type: str = "conda", timeout: float = 60) -> PoolError:
    def error() -> PoolError | None:
        with d.client() as c:
            return c.status().pools[env_type].error

    result = wait_until(error, timeout, interval=0.1, what=f"a {env_type} pool error")
    assert isinstance(result, PoolError)
    return result


# --- the builder on its own -------------------------------------------------------------


async def test_builder_builds_env_with_compiled_bytecode(channel: str, tmp_path: Path) -> None:
    builder = CondaEnvBuilder(tmp_path / "cache", ("conda-extra",), (channel,))
    env = await builder.build(tmp_path / "envs" / "runtimed-conda-abc", "abc", 120)
    prefix = Path(env.venv_path)
    assert env.env_type == "conda" and env.package_hash == builder.package_hash
    assert env.prewarmed_packages == ["python", "ipykernel", "ipywidgets", "conda-extra"]
    assert (prefix / "conda-meta").is_dir()
    assert {p.name.split("-")[0] for p in (prefix / "conda-meta").glob("*.json")} >= {
        "python",
        "ipykernel",
        "ipywidgets",
        "conda",
    }
    assert list(prefix.glob("lib/python3*/site-packages/ipywidgets/__pycache__/*.pyc"))
    assert list((tmp_path / "cache" / "conda-pkgs").iterdir()), "package cache is used"
    out = run_python(env, "import sys, ipykernel, ipywidgets, conda_extra; print(sys.prefix)")
    assert out == str(prefix)


async def test_builder_http_channel_caches_repodata(http_channel: str, tmp_path: Path) -> None:
    builder = CondaEnvBuilder(tmp_path / "cache", (), (http_channel,))
    env = await builder.build(tmp_path / "env", "x", 120)
    assert run_python(env, "import ipykernel; print('ok')") == "ok"
    assert list((tmp_path / "cache" / "repodata").glob("*.json")), "repodata cached on disk"


@pytest.mark.parametrize(
    ("extra", "spec"),
    [
        ("nonexistent-pkg", "nonexistent-pkg"),  # no such package
        ("python >=99", "python >=99"),  # no such version
        ("needs-new-python", "needs-new-python"),  # its dependency cannot be met
        ("needs-missing", "needs-missing"),  # its dependency does not exist
    ],
)
async def test_builder_names_unsatisfiable_spec(
    channel: str, tmp_path: Path, extra: str, spec: str
) -> None:
    builder = CondaEnvBuilder(tmp_path / "cache", (extra,), (channel,))
    with pytest.raises(BuildFailure) as info:
        await builder.build(tmp_path / "env", "x", 60)
    assert (info.value.kind, info.value.step, info.value.spec) == ("solve", "solve", spec)
    assert spec in info.value.message.splitlines()[-1]
    assert not (tmp_path / "env" / "bin" / "python").exists()


async def test_builder_reports_invalid_spec(channel: str, tmp_path: Path) -> None:
    builder = CondaEnvBuilder(tmp_path / "cache", ("bad spec ==<<",), (channel,))
    with pytest.raises(BuildFailure) as info:
        await builder.build(tmp_path / "env", "x", 60)
    assert (info.value.kind, info.value.spec) == ("solve", "bad spec ==<<")


@pytest.mark.parametrize("where", ["refused", "missing-dir"])
async def test_builder_reports_unreachable_channel(tmp_path: Path, where: str) -> None:
    url = {
        "refused": "http://127.0.0.1:9/channel",
        "missing-dir": (tmp_path / "no-such-channel").as_uri(),
    }[where]
    builder = CondaEnvBuilder(tmp_path / "cache", (), (url,))
    started = time.monotonic()
    with pytest.raises(BuildFailure) as info:
        await builder.build(tmp_path / "env", "x", 60)
    assert info.value.kind == "network" and info.value.spec is None
    assert url.rstrip("/") in info.value.message.splitlines()[-1]
    assert time.monotonic() - started < 30


def test_package_hash_follows_specs_and_channels(tmp_path: Path) -> None:
    base = CondaEnvBuilder(tmp_path)
    assert base.packages == ["python", "ipykernel", "ipywidgets"]
    assert base.channels == ("conda-forge",)
    assert base.package_hash == CondaEnvBuilder(tmp_path / "elsewhere").package_hash
    assert base.package_hash != CondaEnvBuilder(tmp_path, ("numpy",)).package_hash
    assert base.package_hash != CondaEnvBuilder(tmp_path, (), ("bioconda",)).package_hash


# --- through a real daemon --------------------------------------------------------------


@pytest.mark.daemon
def test_take_return_flush_and_reuse_on_restart(
    daemon_factory: DaemonFactory, channel: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    d = daemon_factory(*conda_args(channel, size=2), cache_dir=cache)
    d.wait_pool("conda", 2, timeout=120)
    with d.client() as c:
        status = c.status().pools["conda"]
        assert (status.target, status.error) == (2, None)
        assert status.packages == ["python", "ipykernel", "ipywidgets"]
        env = c.take("conda")
        assert env is not None and env.env_type == "conda"
        prefix = Path(env.venv_path)
        assert prefix.parent == cache / "envs" and prefix.name.startswith("runtimed-conda-")
        assert run_python(env, "import sys, ipykernel; print(sys.prefix)") == str(prefix)
        assert c.return_env(env.venv_path) in {"returned", "deleted"}
    d.wait_pool("conda", 2, timeout=120)
    with d.client() as c:
        before = {e.name for e in (cache / "envs").glob("runtimed-conda-*")}
        c.flush_pool()
    d.wait_pool("conda", 2, timeout=120)
    after = {e.name for e in (cache / "envs").glob("runtimed-conda-*")}
    assert not (before & after), "flush replaced every conda env"
    d.stop()

    again = daemon_factory(*conda_args(channel, size=2), cache_dir=cache)
    with again.client() as c:  # adopted at start: ready before any build could finish
        wait_until(lambda: c.status().pools["conda"].available == 2, 30, what="adoption")
        env = c.take("conda", timeout=0)
        assert env is not None and Path(env.venv_path).name in after
    log = (cache / "runtimed.log").read_text()
    assert "conda pool: reused 2 ready env(s)" in log


@pytest.mark.daemon
def test_unsatisfiable_spec_shows_solve_error_and_uv_keeps_serving(
    daemon_factory: DaemonFactory, channel: str
) -> None:
    d = daemon_factory(*conda_args(channel, "--conda-package", "needs-new-python", uv=1))
    error = wait_error(d)
    assert (error.kind, error.step, error.spec) == ("solve", "solve", "needs-new-python")
    assert "python >=99" in error.message
    d.wait_pool("uv", 1, timeout=180)
    with d.client() as c:
        env = c.take("uv")
        assert env is not None and c.status().pools["uv"].error is None
        with pytest.raises(RuntimedError) as failing:  # at once, with the reason
            c.take("conda", timeout=60)
        assert failing.value.code == "pool_failing" and "needs-new-python" in failing.value.message
        assert c.status().pools["conda"].available == 0
    status = [sys.executable, "-m", "runtimed", "status", "--socket", str(d.socket_path)]
    out = subprocess.run(status, capture_output=True, text=True, timeout=30)
    assert "needs-new-python" in out.stdout, out.stdout + out.stderr


@pytest.mark.daemon
@pytest.mark.parametrize("where", ["refused", "missing-dir"])
def test_unreachable_channel_shows_network_error_and_backs_off(
    daemon_factory: DaemonFactory, tmp_path: Path, where: str
) -> None:
    url = {
        "refused": "http://127.0.0.1:9/channel",
        "missing-dir": (tmp_path / "no-such-channel").as_uri(),
    }[where]
    started = time.monotonic()
    d = daemon_factory(*conda_args(url, size=3, uv=1))
    error = wait_error(d)
    assert error.kind == "network" and error.spec is None
    assert "cannot fetch repodata" in error.message.splitlines()[-1]
    d.wait_pool("uv", 1, timeout=180)  # the uv pool is unaffected
    with d.client() as c:
        assert c.take("uv") is not None
        assert c.status().pools["uv"].error is None

        def attempts() -> int:
            error = c.status().pools["conda"].error
            return error.attempts if error is not None else 0

        # Backoff (1 s base here, doubling): a third attempt comes seconds later, not in a
        # tight loop, and the log holds one line per attempt.
        wait_until(lambda: attempts() >= 3, 60, interval=0.1, what="a third attempt")
        assert time.monotonic() - started > 1.5
        seen = attempts()
    failures = (d.cache_dir / "runtimed.log").read_text().count("conda build failed")
    assert seen <= failures <= seen + 2


@pytest.mark.daemon
def test_default_channel_through_a_mirror(
    daemon_factory: DaemonFactory, http_channel: str, tmp_path: Path
) -> None:
    """As in the README: keep the default conda-forge channel, fetch it from a mirror."""
    config = tmp_path / "rattler-config.toml"
    config.write_text(f'[mirrors]\n"https://conda.anaconda.org/conda-forge" = ["{http_channel}"]\n')
    d = daemon_factory(
        "--uv-pool-size", "0", "--conda-pool-size", "1", "--conda-config", str(config)
    )
    d.wait_pool("conda", 1, timeout=120)
    with d.client() as c:
        env = c.take("conda")
    assert env is not None
    assert run_python(env, "import ipykernel; print('ok')") == "ok"


@pytest.mark.daemon
def test_kernel_from_conda_env_executes(
    daemon_factory: DaemonFactory, channel: str, tmp_path: Path
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    d = daemon_factory(*conda_args(channel))
    d.wait_pool("conda", 1, timeout=120)
    with d.client() as c:
        env = c.take("conda")
    assert env is not None
    spec_dir = tmp_path / "kernels" / "conda-env"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [env.python_path, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "conda env",
                "language": "python",
                "env": {"IPYTHONDIR": str(tmp_path / "ipython")},
            }
        )
    )
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    km = KernelManager(
        kernel_name="conda-env",
        kernel_spec_manager=ksm,
        connection_file=str(tmp_path / "kernel.json"),
    )
    km.start_kernel(cwd=str(tmp_path))
    try:
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            results: list[str] = []

            def hook(msg: dict[str, object]) -> None:
                if msg["msg_type"] == "execute_result":
                    content = msg["content"]
                    assert isinstance(content, dict)
                    results.append(content["data"]["text/plain"])

            reply = kc.execute_interactive("1+1", output_hook=hook, timeout=60)
            assert reply["content"]["status"] == "ok" and results == ["2"]
            reply = kc.execute_interactive("import sys; sys.prefix", output_hook=hook, timeout=60)
            assert reply["content"]["status"] == "ok" and results[-1] == repr(env.venv_path)
        finally:
            kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert not km.is_alive()


@pytest.fixture(autouse=True)
def _no_user_cache_writes() -> Iterator[None]:
    """rattler must keep to the daemon's cache dir: nothing under ~/.cache/rattler."""
    user_cache = Path.home() / ".cache" / "rattler"
    existed = user_cache.exists()
    yield
    assert existed or not user_cache.exists(), "rattler wrote into ~/.cache/rattler"
