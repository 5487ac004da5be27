"""Looking at a cache dir from outside the daemon: which dir a socket's daemon uses, who
holds its lock, what is left over from a crash, and how much disk each part takes.

Everything here only reads, except ``remove_*`` (used by `runt daemon doctor --fix`),
which re-checks right before removing so a daemon starting meanwhile keeps its files.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runtimed.daemon.singleton import read_daemon_info
from runtimed.paths import RuntimePaths, default_cache_dir, default_socket_path

#: A temp file (``files.atomic_write``) older than this is left over from a crash: a
#: live writer renames its temp file within milliseconds.
TEMP_FILE_MIN_AGE_SECS = 600.0

#: The parts of the cache dir that `runt daemon status` sizes.
DISK_PARTS = ("envs", "inline-envs", "notebook-docs", "blobs")


def paths_for_socket(socket: str | Path | None) -> RuntimePaths:
    """The files of the daemon that serves ``socket`` (None: the default socket), as
    `runtimed run` and auto-start pick them: a socket named ``runtimed.sock`` other than
    the default lives in its cache dir; any other socket goes with the default cache dir."""
    sock = Path(socket).expanduser().absolute() if socket else default_socket_path()
    if sock != default_socket_path() and sock.name == "runtimed.sock":
        return RuntimePaths(cache_dir=sock.parent, socket_path=sock)
    return RuntimePaths(cache_dir=default_cache_dir(), socket_path=sock)


def is_daemon_process(pid: int) -> bool:
    """Whether ``pid`` runs and is a runtimed daemon (a reused pid of another program
    does not count)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # alive, and not ours to inspect: assume the worst
    return any("runtimed" in part for part in cmdline)


def pid_in_file(path: Path) -> int | None:
    """The pid recorded in daemon.lock (empty after a clean stop)."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


PROC_LOCKS = Path("/proc/locks")


def flock_holder(path: Path) -> int | None:
    """The pid holding an flock on ``path`` according to /proc/locks (Linux), None when
    nobody does. Asking this way never takes the lock, so it cannot make a daemon that
    starts at this moment fail."""
    try:
        st = path.stat()
        locks = PROC_LOCKS.read_text()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in locks.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 22857 fe:00:2187294 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            return int(fields[4]) if fields[4].isdigit() else None
    return None


@dataclass(frozen=True)
class LockState:
    """Who holds daemon.lock: ``holder`` is a live daemon's pid or None; ``recorded`` is
    the pid written in the file (a crashed daemon's stays behind)."""

    holder: int | None
    recorded: int | None


def lock_state(paths: RuntimePaths) -> LockState:
    """The lock holder: /proc/locks where there is one, else the pid in the file if that
    process is a running daemon (macOS)."""
    recorded = pid_in_file(paths.lock_file)
    if sys.platform.startswith("linux") and PROC_LOCKS.exists():
        return LockState(flock_holder(paths.lock_file), recorded)
    alive = recorded is not None and is_daemon_process(recorded)
    return LockState(recorded if alive else None, recorded)


@dataclass(frozen=True)
class StaleFiles:
    """What a daemon that died without cleaning up left behind."""

    socket: Path | None
    socket_inode: int | None
    daemon_json: Path | None
    daemon_json_pid: int | None
    temp_files: tuple[Path, ...]

    @property
    def empty(self) -> bool:
        return self.socket is None and self.daemon_json is None and not self.temp_files


def _socket_inode(path: Path) -> int | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_ino if stat.S_ISSOCK(st.st_mode) else None


def _stale_socket(paths: RuntimePaths, lock: LockState) -> int | None:
    """The inode of the socket file if nobody serves it and no daemon holds the lock."""
    from runtimed.client.autostart import answers

    inode = _socket_inode(paths.socket_path)
    if inode is None or lock.holder is not None or answers(paths.socket_path):
        return None
    return inode


def _stale_info(paths: RuntimePaths) -> tuple[bool, int | None]:
    """Whether daemon.json is stale (its process is gone, or it is unreadable), and its pid."""
    if not paths.info_file.exists():
        return False, None
    info = read_daemon_info(paths.info_file) or {}
    pid = info.get("pid")
    if not isinstance(pid, int):
        return True, None
    return not is_daemon_process(pid), pid


def temp_files(cache_dir: Path, min_age: float = TEMP_FILE_MIN_AGE_SECS) -> list[Path]:
    """Leftover ``.*.tmp`` files (atomic_write's) in the cache dir, its notebook-docs and
    blob shards; env trees are not searched (their files are the tools' business)."""
    dirs = [cache_dir, cache_dir / "notebook-docs", cache_dir / "blobs"]
    blobs = cache_dir / "blobs"
    if blobs.is_dir():
        dirs += sorted(p for p in blobs.iterdir() if p.is_dir())
    cutoff = time.time() - min_age
    found = []
    for folder in dirs:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    found.append(Path(entry.path))
            except OSError:
                continue
    return found


def stale_files(paths: RuntimePaths, lock: LockState | None = None) -> StaleFiles:
    """Find the stale socket, daemon.json and temp files of ``paths``."""
    lock = lock or lock_state(paths)
    inode = _stale_socket(paths, lock)
    info_stale, info_pid = _stale_info(paths)
    return StaleFiles(
        socket=paths.socket_path if inode is not None else None,
        socket_inode=inode,
        daemon_json=paths.info_file if info_stale else None,
        daemon_json_pid=info_pid,
        temp_files=tuple(temp_files(paths.cache_dir)),
    )


def remove_stale(paths: RuntimePaths, found: StaleFiles) -> list[str]:
    """Remove what ``found`` lists that is still stale now; returns what was done."""
    done: list[str] = []
    fresh = stale_files(paths)  # a daemon may have started since: look again
    same_socket = found.socket is not None and fresh.socket_inode == found.socket_inode
    if same_socket and _unlink(paths.socket_path):
        done.append(f"removed the stale socket {paths.socket_path}")
    still_stale = found.daemon_json is not None and fresh.daemon_json is not None
    if still_stale and _unlink(paths.info_file):
        pid = found.daemon_json_pid
        done.append(f"removed {paths.info_file} ({f'pid {pid} is gone' if pid else 'unreadable'})")
    removed = [p for p in found.temp_files if p in fresh.temp_files and _unlink(p)]
    if removed:
        done.append(f"removed {len(removed)} leftover temp file(s) in {paths.cache_dir}")
    return done


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def tree_bytes(root: Path) -> int:
    """Disk use of ``root`` (allocated blocks; each hard-linked file counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total


def disk_use(cache_dir: Path) -> dict[str, int]:
    """Bytes used by each of ``DISK_PARTS`` (0 when absent)."""
    return {part: tree_bytes(cache_dir / part) for part in DISK_PARTS}


def free_bytes(path: Path) -> int:
    """Free space for us on the file system of ``path`` (or of its nearest existing parent)."""
    import shutil

    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def human_bytes(n: float) -> str:
    """``1.2 GB``: decimal units, as df -H and most file managers show them."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
