"""Any installed kernelspec runs, with its own argv: bash_kernel (from PyPI, installed into
a test prefix) and Deno (``deno jupyter``, from npm) beside pooled Python kernels. Real
daemon, real kernels; JUPYTER_PATH points the daemon at the test's kernelspecs only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest

import runtimed
from helpers import DaemonProcess, wait_until

BIN = Path(sys.executable).parent
UV = shutil.which("uv") or str(BIN / "uv")


def deno_binary() -> str | None:
    """`deno` from PATH, or the one .ci/run installs with npm."""
    found = shutil.which("deno")
    if found:
        return found
    local = Path(__file__).resolve().parent.parent / ".ci" / "node" / "node_modules" / ".bin"
    return str(local / "deno") if (local / "deno").exists() else None


def install_bash_kernel(base: Path) -> Path:
    """bash_kernel in an env of its own; its kernelspec under ``base/share/jupyter``."""
    env = base / "bash-env"
    quiet = {"capture_output": True, "text": True, "timeout": 300}
    subprocess.run([UV, "venv", "-q", "-p", sys.executable, str(env)], check=True, **quiet)  # type: ignore[call-overload]
    install = [UV, "pip", "install", "-q", "-p", str(env), "bash_kernel"]
    if subprocess.run([*install, "--offline"], **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(install, check=True, **quiet)  # type: ignore[call-overload]
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "bash_kernel.install", "--prefix", str(base)],
        check=True,
        **quiet,  # type: ignore[arg-type]
    )
    return base / "share" / "jupyter"


def install_deno_kernel(base: Path, deno: str) -> None:
    """What `deno jupyter --install` writes (it always writes to the user's dir)."""
    spec = base / "share" / "jupyter" / "kernels" / "deno"
    spec.mkdir(parents=True)
    argv = [deno, "jupyter", "--kernel", "--conn", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Deno", "language": "typescript"}
    (spec / "kernel.json").write_text(json.dumps(kernel))


@pytest.fixture(scope="module")
def ks_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    base = tmp_path_factory.mktemp("kernelspecs")
    jupyter_path = install_bash_kernel(base)
    deno = deno_binary()
    if deno is not None:
        install_deno_kernel(base, deno)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter_path))
        d = DaemonProcess(base / "cache", ["--uv-pool-size", "1"])
        d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def runt(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runt"), *args, "--socket", str(d.socket_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.daemon
def test_runt_start_bash_runs_its_own_argv(ks_daemon: DaemonProcess, tmp_path: Path) -> None:
    started = runt(ks_daemon, "start", "bash", "--cwd", str(tmp_path))
    assert started.returncode == 0, started.stderr
    runtime_id = started.stdout.strip()
    (info,) = [r for r in json.loads(runt(ks_daemon, "ps", "--json").stdout)
               if r["runtime_id"] == runtime_id]  # fmt: skip
    assert info["kernel_name"] == "bash" and info["language"] == "bash"
    assert info["env_source"] == "kernelspec:bash" and info["status"] == "idle"
    cmdline = " ".join(psutil.Process(info["pid"]).cmdline())
    assert "-m bash_kernel" in cmdline  # the kernelspec's argv, not ipykernel in a pool env

    with runtimed.Session(info["notebook_id"], socket_path=ks_daemon.socket_path) as s:
        result = s.run("echo $((2 + 3)); pwd")
        assert result.success, result.error
        assert result.stdout.split() == ["5", str(tmp_path)]
        assert s.run("export X=7").success
        assert s.run("echo $X").stdout.strip() == "7"  # one live shell

    killed = runt(ks_daemon, "kill", runtime_id)
    assert killed.returncode == 0, killed.stderr
    wait_until(lambda: not psutil.pid_exists(info["pid"]) or
               psutil.Process(info["pid"]).status() == psutil.STATUS_ZOMBIE, 10,
               what="the bash kernel to exit")  # fmt: skip


@pytest.mark.daemon
def test_a_bash_notebook_runs_and_saves_as_bash(ks_daemon: DaemonProcess, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
    nb.cells.append(nbformat.v4.new_code_cell("for i in 1 2 3; do echo -n $i; done"))
    path = tmp_path / "script.ipynb"
    nbformat.write(nb, path)
    with runtimed.Session.open(path, socket_path=ks_daemon.socket_path) as s:
        (result,) = s.run_all()
        assert result.stdout.strip() == "123"
        assert s.env_source == "kernelspec:bash"
        s.save()
    saved = nbformat.read(path, as_version=4)
    assert saved.metadata.kernelspec["name"] == "bash"
    assert saved.metadata.language_info["name"] == "bash"
    assert saved.cells[0].outputs[0]["text"].strip() == "123"


@pytest.mark.daemon
def test_python_still_takes_pooled_envs(ks_daemon: DaemonProcess) -> None:
    with runtimed.Session(socket_path=ks_daemon.socket_path) as s:
        assert s.run("1 + 1").display_data[0].data["text/plain"] == "2"
        assert s.env_source == "uv:prewarmed"


@pytest.mark.daemon
def test_unknown_names_list_what_is_installed(ks_daemon: DaemonProcess) -> None:
    refused = runt(ks_daemon, "start", "nosuchkernel")
    assert refused.returncode != 0
    assert "no kernel named 'nosuchkernel'" in refused.stderr
    assert "python3, bash" in refused.stderr
    nb_julia = runtimed.Session(socket_path=ks_daemon.socket_path)
    nb_julia.set_metadata("kernelspec", {"name": "julia-1.9", "language": "julia"})
    with pytest.raises(runtimed.RuntimedError, match=r"needs a 'julia' kernel.*bash"):
        nb_julia.start_kernel()
    nb_julia.close()


@pytest.mark.daemon
def test_interrupt_a_bash_cell(ks_daemon: DaemonProcess) -> None:
    with runtimed.Session(socket_path=ks_daemon.socket_path) as s:
        s.set_metadata("kernelspec", {"name": "bash", "language": "bash"})
        cell = s.create_cell("sleep 30; echo never")
        execution = s.queue_cell(cell)
        wait_until(lambda: s.kernel.get("activity") == "busy", 30, what="the cell to run")
        s.interrupt()
        result = s.wait_for_execution(execution, timeout=20)
        assert "never" not in result.stdout
        assert s.run("echo after").stdout.strip() == "after"


@pytest.mark.daemon
@pytest.mark.skipif(
    deno_binary() is None and not os.environ.get("CI"),
    reason="deno is not installed (.ci/run installs it with npm)",
)
def test_deno_jupyter_kernel(ks_daemon: DaemonProcess) -> None:
    with runtimed.Session(socket_path=ks_daemon.socket_path) as s:
        s.set_metadata("kernelspec", {"name": "deno", "language": "typescript"})
        result = s.run("const n: number = 6 * 7; console.log(n); n")
        assert result.success, result.error
        assert result.stdout.strip() == "42"
        assert s.env_source == "kernelspec:deno"
        assert s.get_metadata("language_info")["name"] == "typescript"
