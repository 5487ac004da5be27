"""The daemon: owns the pools (and later rooms, kernels, blobs) and the socket server."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import signal
import sys
import time
from typing import Any

from runtimed import __version__
from runtimed.daemon.config import DaemonConfig
from runtimed.daemon.pool import EnvPool, UvEnvBuilder
from runtimed.daemon.pool_channel import PoolChannel
from runtimed.daemon.server import SocketServer, handshake_ok
from runtimed.daemon.singleton import DaemonLock, write_daemon_info
from runtimed.errors import RuntimedError
from runtimed.protocol.framing import PROTOCOL_VERSION
from runtimed.protocol.messages import (
    DaemonInfo,
    PoolStatus,
    RoomInfo,
    StatusReply,
)

log = logging.getLogger("runtimed")


class Daemon:
    """One running runtimed. ``run()`` blocks until a shutdown request or a signal."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.paths = config.paths
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        builder = UvEnvBuilder(extra_packages=config.uv_packages,
                               **({"python": config.uv_python} if config.uv_python else {}))  # fmt: skip
        self.pools: dict[str, EnvPool] = {
            "uv": EnvPool(builder, self.paths.envs_dir, config.uv_pool),
        }
        self.server = SocketServer(
            self.paths.socket_path,
            {"pool": PoolChannel(self).serve},
            handshake_timeout=config.handshake_timeout_secs,
        )

    # --- used by channels ---------------------------------------------------------------

    def handshake_reply(self, **extra: Any) -> bytes:
        return handshake_ok(**extra)

    def pool(self, env_type: str) -> EnvPool:
        pool = self.pools.get(env_type)
        if pool is None:
            raise RuntimedError(
                f"the {env_type} pool is not available in this daemon (size 0); "
                "conda envs arrive with the py-rattler builder",
                code="pool_disabled",
            )
        return pool

    def status(self) -> StatusReply:
        pools = {name: pool.status() for name, pool in self.pools.items()}
        pools.setdefault("conda", PoolStatus("conda", 0, 0, 0, [], None))
        return StatusReply(pools=pools, rooms=0, uptime_secs=time.time() - self.started_at)

    def info(self) -> DaemonInfo:
        return DaemonInfo(
            pid=os.getpid(),
            version=__version__,
            protocol_version=PROTOCOL_VERSION,
            socket_path=str(self.paths.socket_path),
            cache_dir=str(self.paths.cache_dir),
            started_at=self.started_at,
            blob_port=None,
        )

    def list_rooms(self) -> list[RoomInfo]:
        return []

    async def flush_pools(self) -> None:
        await asyncio.gather(*(pool.flush() for pool in self.pools.values()))

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until stopped. The caller must hold the DaemonLock."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, f"signal {sig.name}")
        await self.server.start()
        write_daemon_info(self.paths.info_file, {
            "pid": os.getpid(), "version": __version__, "protocol_version": PROTOCOL_VERSION,
            "socket_path": str(self.paths.socket_path), "cache_dir": str(self.paths.cache_dir),
            "started_at": self.started_at, "blob_port": None,
        })  # fmt: skip
        log.info("runtimed %s listening on %s (pid %d)", __version__, self.paths.socket_path,
                 os.getpid())  # fmt: skip
        starts = [asyncio.create_task(pool.start()) for pool in self.pools.values()]
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: %s", self._stop_reason or "exit")
            for task in starts:
                task.cancel()
            await self.server.close()
            await asyncio.gather(*(pool.close() for pool in self.pools.values()),
                                 return_exceptions=True)  # fmt: skip
            self.paths.info_file.unlink(missing_ok=True)


def configure_logging(config: DaemonConfig) -> None:
    level = logging.DEBUG if os.environ.get("RUNTIMED_LOG", "").lower() == "debug" else logging.INFO
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    logfile = logging.handlers.RotatingFileHandler(
        config.paths.log_file, maxBytes=5 * 2**20, backupCount=2
    )
    logfile.setFormatter(fmt)
    root.handlers[:] = [stderr, logfile]


def run_daemon(config: DaemonConfig) -> int:
    """Take the singleton lock and serve. Returns a process exit code."""
    config.paths.prepare()
    lock = DaemonLock(config.paths.lock_file)
    lock.acquire()  # raises AlreadyRunningError
    try:
        configure_logging(config)
        asyncio.run(Daemon(config).run())
    finally:
        lock.release()
    return 0
