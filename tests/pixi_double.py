"""A stand-in for the ``pixi`` package manager, which cannot be had on this machine (not on
PyPI, and conda-forge is out of reach): an executable ``pixi`` for the front of PATH that
answers ``pixi --version`` as pixi does and implements ``pixi install --manifest-path X``
by making ``.pixi/envs/default`` next to X with ``uv venv`` + ipykernel (offline from the
uv cache first). Every call's argv is appended to a log, one JSON list a line."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import uv

from runtimed.daemon.envs.uv_builder import default_interpreter

VERSION = "pixi 0.41.4"

_SCRIPT = """#!{runner}
import json, os, subprocess, sys

args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv) + "\\n")
if args == ["--version"]:
    print({version!r})
    sys.exit(0)
if len(args) != 3 or args[:2] != ["install", "--manifest-path"]:
    print(f"pixi double: not implemented: {{args}}", file=sys.stderr)
    sys.exit(2)
prefix = os.path.join(os.path.dirname(args[2]), ".pixi", "envs", "default")
python = os.path.join(prefix, "bin", "python")
if not os.path.exists(python):
    subprocess.run([{uv!r}, "venv", "--quiet", "--python", {python!r}, prefix], check=True)
install = [{uv!r}, "pip", "install", "--quiet", "--python", python, "ipykernel"]
if subprocess.run([*install, "--offline"]).returncode != 0:
    subprocess.run(install, check=True)
print("The default environment has been installed.")
"""


def install_pixi_double(bin_dir: Path, log: Path) -> Path:
    """Write ``bin_dir/pixi``; returns its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = _SCRIPT.format(
        runner=sys.executable,
        log=str(log),
        version=VERSION,
        uv=uv.find_uv_bin(),
        python=default_interpreter(),
    )
    pixi = bin_dir / "pixi"
    pixi.write_text(script)
    pixi.chmod(pixi.stat().st_mode | stat.S_IXUSR)
    return pixi


def calls(log: Path) -> list[list[str]]:
    """The argv of every call so far."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]
