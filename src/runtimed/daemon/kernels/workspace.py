"""A kernel's private directory: connection file (0600), IPC sockets, output log."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

# sun_path is 108 bytes on Linux, 104 on macOS; IPC endpoints are "<ipc_base>-<n>".
MAX_IPC_PATH = 100


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class KernelWorkspace:
    """Where one kernel's files live. ``dir`` is mode 0700 and owned by the session."""

    kernel_id: str
    dir: Path

    @property
    def connection_file(self) -> Path:
        """The connection file jupyter_client writes (mode 0600)."""
        return self.dir / "connection.json"

    @property
    def ipc_base(self) -> str:
        """The ``ip`` for the IPC transport: socket files are ``<ipc_base>-<port>``."""
        return str(self.dir / "ipc")

    @property
    def log_file(self) -> Path:
        """The kernel process's stdout and stderr."""
        return self.dir / "kernel.log"

    def read_log_tail(self, limit: int = 4000) -> str:
        """The last ``limit`` characters the kernel process wrote (terminal colours
        removed: it ends up in error messages)."""
        try:
            data = self.log_file.read_bytes()
        except OSError:
            return ""
        return _ANSI.sub("", data[-limit:].decode("utf-8", errors="replace"))

    def remove(self) -> None:
        """Delete the directory and everything in it."""
        shutil.rmtree(self.dir, ignore_errors=True)


def create_workspace(runtime_dir: Path, kernel_id: str | None = None) -> KernelWorkspace:
    """A fresh private dir under ``runtime_dir``, or under the temp dir when the path would be
    too long for a Unix socket."""
    kernel_id = kernel_id or uuid.uuid4().hex
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = runtime_dir / f"kernel-{kernel_id[:12]}"
    if len(str(path / "ipc")) + 8 > MAX_IPC_PATH:
        path = Path(tempfile.mkdtemp(prefix="runt-k-"))
    else:
        path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return KernelWorkspace(kernel_id, path)
