"""The on-disk record of a pooled env: its directory name, ready marker and taken marker.

The ready marker is written last in a build, so an env without one is half-built.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import shutil
import time
from pathlib import Path

import msgspec

from runtimed.files import atomic_write
from runtimed.paths import is_valid_env_id
from runtimed.protocol.control import EnvType, PooledEnv

READY_MARKER = ".runtimed-ready.json"
TAKEN_MARKER = ".runtimed-taken.json"


def new_env_id() -> str:
    return secrets.token_hex(6)


def env_dir_name(env_type: EnvType, env_id: str) -> str:
    return f"runtimed-{env_type}-{env_id}"


def parse_env_dir_name(name: str, env_type: EnvType) -> str | None:
    """The env id if ``name`` is a well-formed dir name of this pool, else None."""
    prefix = f"runtimed-{env_type}-"
    if not name.startswith(prefix):
        return None
    env_id = name[len(prefix) :]
    return env_id if is_valid_env_id(env_id) else None


def package_hash(env_type: EnvType, interpreter: str, packages: list[str], extra: str = "") -> str:
    """A stable hash of what an env was built from; a change means the env must be rebuilt."""
    payload = json.dumps(
        {"env_type": env_type, "python": interpreter, "packages": sorted(packages), "x": extra},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def write_ready_marker(env: PooledEnv) -> None:
    atomic_write(Path(env.venv_path) / READY_MARKER, msgspec.json.encode(env), sync=False)


def read_ready_marker(prefix: Path) -> PooledEnv | None:
    try:
        return msgspec.json.decode((prefix / READY_MARKER).read_bytes(), type=PooledEnv)
    except (OSError, msgspec.DecodeError):
        return None


def mark_taken(prefix: Path) -> None:
    atomic_write(prefix / TAKEN_MARKER, json.dumps({"taken_at": time.time()}).encode(), sync=False)


def clear_taken(prefix: Path) -> None:
    (prefix / TAKEN_MARKER).unlink(missing_ok=True)


def taken_at(prefix: Path) -> float | None:
    try:
        return float(json.loads((prefix / TAKEN_MARKER).read_text())["taken_at"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def remove_env_dir(prefix: Path) -> None:
    """Delete an env; the ready marker goes first so a crash mid-delete leaves it unusable."""
    (prefix / READY_MARKER).unlink(missing_ok=True)
    shutil.rmtree(prefix, ignore_errors=True)


async def python_runs(python: str, timeout: float = 30.0) -> bool:
    """Whether an env's interpreter starts at all (``python -c pass``), within ``timeout``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-c",
            "pass",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        return await asyncio.wait_for(proc.wait(), timeout=timeout) == 0
    except TimeoutError:
        return False
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
