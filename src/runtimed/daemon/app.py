"""The daemon: owns the pools, the rooms (and their kernels) and the socket server.

Rooms and the settings document load pycrdt and friends; they are imported on first use
so that the daemon answers its first ping quickly and idles small.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runtimed.daemon.blobs import BlobStore
from runtimed.daemon.blobs.blob_collector import BlobCollector
from runtimed.daemon.channels.blob import BlobChannel
from runtimed.daemon.channels.control import ControlChannel, DaemonControl
from runtimed.daemon.channels.runtimes import RuntimeRequests
from runtimed.daemon.config import DaemonConfig
from runtimed.daemon.disk_keeper import DiskKeeper
from runtimed.daemon.envs import EnvPool, UvEnvBuilder
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.daemon.envs.inline_envs import InlineEnvs
from runtimed.daemon.logs import configure_logging
from runtimed.daemon.settings.settings_service import SettingsService
from runtimed.daemon.singleton import DaemonLock, write_daemon_info
from runtimed.errors import RuntimedError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.control import DaemonInfo, RoomInfo, StatusReply
from runtimed.protocol.framing import PROTOCOL_VERSION
from runtimed.protocol.handshake import Handshake
from runtimed.transport.unix_server import UnixSocketServer, raise_descriptor_limit
from runtimed.version import __version__

if TYPE_CHECKING:
    from runtimed.daemon.blobs.http_server import BlobHttpServer
    from runtimed.daemon.channels.notebook import NotebookChannel
    from runtimed.daemon.channels.settings import SettingsChannel
    from runtimed.daemon.envs.resolver import EnvResolver
    from runtimed.daemon.execution.room_kernels import RoomKernels
    from runtimed.daemon.history import HistoryLog
    from runtimed.daemon.kernels.kernel_pool import KernelPool
    from runtimed.daemon.rooms.room_registry import RoomRegistry
    from runtimed.daemon.runtimes import RuntimeRegistry

log = logging.getLogger("runtimed")

BLOB_GC_INTERVAL_SECS = float(os.environ.get("RUNTIMED_BLOB_GC_INTERVAL", "600"))
DISK_GC_INTERVAL_SECS = float(os.environ.get("RUNTIMED_DISK_GC_INTERVAL", "3600"))


class Daemon:
    """One running runtimed. ``run()`` blocks until a shutdown request or a signal."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.paths = config.paths
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self.settings = SettingsService(config.config_dir, dict(config.settings_overrides))
        self.settings.on_change(self._apply_settings)
        effective = self.settings.effective
        self.pools: dict[str, EnvPool] = {
            "uv": EnvPool(
                self._uv_builder(effective),
                self.paths.envs_dir,
                replace(config.pool, target=int(effective["uv"]["pool_size"])),
            ),
            "conda": EnvPool(
                self._conda_builder(effective),
                self.paths.envs_dir,
                replace(config.pool, target=int(effective["conda"]["pool_size"])),
            ),
        }
        self._rooms: RoomRegistry | None = None
        self._room_kernels: RoomKernels | None = None
        self._notebook_channel: NotebookChannel | None = None
        self._settings_channel: SettingsChannel | None = None
        self._env_resolver: EnvResolver | None = None
        self._kernel_pool: KernelPool | None = None
        self._history: HistoryLog | None = None
        self._runtimes: RuntimeRegistry | None = None
        self.blobs = BlobStore(self.paths.blobs_dir, int(effective["blob_max_bytes"]))
        self.blob_http: BlobHttpServer | None = None
        self.blob_collector = BlobCollector(
            self.blobs,
            self.paths.notebook_docs_dir,
            live_documents=self._live_documents,
            grace_secs=lambda: float(self.settings.get("blob_gc_grace_secs")),
        )
        self.disk = DiskKeeper(
            InlineEnvs(self.paths.inline_envs_dir, self._envs_in_use),
            self.pools,
            self.paths.notebook_docs_dir,
            self.paths.blobs_dir,
            open_rooms=lambda: set(self._rooms.rooms) if self._rooms is not None else set(),
            collect_blobs=self.blob_collector.collect,
            setting=self.settings.get,
        )
        control = DaemonControl(
            pools=self.pools,
            status=self.status,
            info=self.info,
            list_rooms=self.list_rooms,
            request_stop=self.request_stop,
            disk=self.disk,
            runtimes=RuntimeRequests(lambda: self.runtimes, lambda: self.history),
        )
        self.server = UnixSocketServer(
            self.paths.socket_path,
            {
                "pool": ControlChannel(control).serve,
                "notebook_sync": self._serve_notebook,
                "open_notebook": self._serve_notebook,
                "settings_sync": self._serve_settings,
                "blob": BlobChannel(self.blobs).serve,
            },
            handshake_timeout=config.handshake_timeout_secs,
        )

    # --- builders from settings ---------------------------------------------------------

    @staticmethod
    def _uv_builder(settings: dict[str, Any]) -> UvEnvBuilder:
        uv = settings["uv"]
        return UvEnvBuilder.create(tuple(uv["default_packages"]), uv["python"])

    def _conda_builder(self, settings: dict[str, Any]) -> CondaEnvBuilder:
        conda = settings["conda"]
        return CondaEnvBuilder(
            self.paths.cache_dir,
            tuple(conda["default_packages"]),
            tuple(conda["channels"]),
            self.config.conda_config_file,
        )

    def _apply_settings(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Pool sizes and package lists take effect at once, without a restart."""
        self.blobs.max_size = int(new["blob_max_bytes"])
        if self._kernel_pool is not None:
            self._kernel_pool.wake()
        for name, make in (("uv", self._uv_builder), ("conda", self._conda_builder)):
            if old[name] == new[name]:
                continue
            size_only = {**old[name], "pool_size": 0} == {**new[name], "pool_size": 0}
            builder = None if size_only else make(new)
            self.pools[name].reconfigure(builder=builder, target=int(new[name]["pool_size"]))

    # --- channels -----------------------------------------------------------------------

    @property
    def notebook_channel(self) -> NotebookChannel:
        """Rooms, their kernels and the notebook channel, made on first use (pycrdt,
        jupyter_client and friends load then)."""
        if self._notebook_channel is None:
            from runtimed.daemon.channels.notebook import NotebookChannel
            from runtimed.daemon.channels.room_requests import RoomRequests
            from runtimed.daemon.execution.room_kernel import RoomKernelDeps
            from runtimed.daemon.execution.room_kernels import RoomKernels
            from runtimed.daemon.kernels.kernel_pool import KernelPool
            from runtimed.daemon.kernels.provider import LocalKernelProvider
            from runtimed.daemon.rooms.notebook_loader import BlobPlace, NotebookLoader
            from runtimed.daemon.rooms.room_registry import RoomRegistry
            from runtimed.daemon.rooms.room_store import room_key
            from runtimed.daemon.runtimes import RuntimeRegistry

            cache = self.paths.cache_dir
            local = LocalKernelProvider(
                self.env_resolver, runtime_dir=cache / "kernels", ipython_dir=cache / "ipython"
            )
            self._kernel_pool = KernelPool(
                local,
                self.env_resolver,
                self.pools,
                size=lambda: int(self.settings.get("kernel_pool.size")),
                default_env=lambda: str(self.settings.get("default_python_env")),
                busy=self._any_cell_running,
                pool_dir=cache / "kernel-pool",
            )
            room_kernels = RoomKernels(
                RoomKernelDeps(
                    provider=self._kernel_pool,
                    untitled_cwd=lambda notebook_id: cache / "untitled" / room_key(notebook_id),
                    blobs=self.blobs,
                    blob_threshold=lambda: int(self.settings.get("output_blob_threshold")),
                    execution_log=lambda notebook_id, nb: self.history.for_room(
                        notebook_id, nb, lambda: self.runtimes.runtime_id_of(notebook_id)
                    ),
                    on_runtime=lambda room_kernel, event: self.runtimes.observe(room_kernel, event),
                )
            )
            self._room_kernels = room_kernels
            self._rooms = RoomRegistry(
                self.paths.notebook_docs_dir,
                keep_alive_secs=lambda: float(self.settings.get("keep_alive_secs")),
                room_kernels=room_kernels,
                load_notebook=NotebookLoader(
                    self._refer_file_outputs,
                    BlobPlace(
                        self.blobs.root,
                        self.blobs.max_size,
                        lambda: int(self.settings.get("output_blob_threshold")),
                    ),
                ),
            )
            requests = RoomRequests(room_kernels, blob_fetch=self.blobs.get)
            self._notebook_channel = NotebookChannel(self._rooms, requests)
            self._runtimes = RuntimeRegistry(self._rooms, room_kernels, self.history)
        return self._notebook_channel

    @property
    def runtimes(self) -> RuntimeRegistry:
        """The kernels the daemon owns (made with the rooms)."""
        self.notebook_channel  # noqa: B018 - builds the rooms and the registry
        assert self._runtimes is not None
        return self._runtimes

    @property
    def history(self) -> HistoryLog:
        """Execution history in ``history.sqlite``, opened on first use."""
        if self._history is None:
            from runtimed.daemon.history import HistoryLog, HistoryStore, Retention

            self._history = HistoryLog(
                HistoryStore(self.paths.history_file),
                retention=lambda: Retention(
                    float(self.settings.get("history.max_age_days")),
                    int(self.settings.get("history.max_executions")),
                ),
            )
            self._history.start()
        return self._history

    @property
    def env_resolver(self) -> EnvResolver:
        """Turns a room's env_source into a ready env (pool, inline, pyproject)."""
        if self._env_resolver is None:
            from runtimed.daemon.envs.resolver import EnvResolver

            self._env_resolver = EnvResolver(
                self.pools,
                self.paths.inline_envs_dir,
                self.paths.cache_dir,
                default_python_env=lambda: str(self.settings.get("default_python_env")),
                conda_channels=lambda: list(self.settings.get("conda.channels")),
                conda_config_file=self.config.conda_config_file,
                take_timeout=self.config.pool.take_timeout_secs,
            )
        return self._env_resolver

    def _refer_file_outputs(self, nb: dict[str, Any]) -> dict[str, Any]:
        """Large outputs of a notebook file go to the blob store as it is loaded."""
        from runtimed.documents.blob_refs import refer_notebook_outputs

        def put(data: bytes, media_type: str) -> str | None:
            try:
                return self.blobs.put(data, media_type)
            except (RuntimedError, OSError):
                return None  # it stays inline

        threshold = int(self.settings.get("output_blob_threshold"))
        return refer_notebook_outputs(nb, put, threshold)

    def _live_documents(self) -> list[bytes]:
        rooms = list(self._rooms.rooms.values()) if self._rooms is not None else []
        return [room.nb.doc.get_update() for room in rooms]

    def _envs_in_use(self) -> set[str]:
        """Env dirs kernels run in (rooms' and the kernel pool's): never collected."""
        used = self._kernel_pool.env_paths() if self._kernel_pool is not None else set()
        if self._room_kernels is not None:
            used |= self._room_kernels.env_paths()
        return used

    def _any_cell_running(self) -> bool:
        rooms = self._rooms.rooms.values() if self._rooms is not None else ()
        return any(room.runtime_state.queue()["executing"] for room in rooms)

    async def _serve_notebook(self, stream: FrameConnection, handshake: Handshake) -> None:
        await self.notebook_channel.serve(stream, handshake)

    async def _serve_settings(self, stream: FrameConnection, handshake: Handshake) -> None:
        if self._settings_channel is None:
            from runtimed.daemon.channels.settings import SettingsChannel

            self._settings_channel = SettingsChannel(self.settings)
        await self._settings_channel.serve(stream, handshake)

    # --- what the control channel sees ---------------------------------------------------

    def status(self) -> StatusReply:
        pools = {name: pool.status() for name, pool in self.pools.items()}
        rooms = len(self._rooms.rooms) if self._rooms is not None else 0
        kernels = self._kernel_pool.status() if self._kernel_pool is not None else None
        return StatusReply(
            pools=pools, kernels=kernels, rooms=rooms, uptime_secs=time.time() - self.started_at
        )

    def info(self) -> DaemonInfo:
        return DaemonInfo(
            pid=os.getpid(),
            version=__version__,
            protocol_version=PROTOCOL_VERSION,
            socket_path=str(self.paths.socket_path),
            cache_dir=str(self.paths.cache_dir),
            started_at=self.started_at,
            blob_port=self.blob_port,
        )

    @property
    def blob_port(self) -> int | None:
        return self.blob_http.port if self.blob_http is not None else None

    # --- blobs --------------------------------------------------------------------------

    async def _start_blob_http(self) -> None:
        from runtimed.daemon.blobs.http_server import BlobHttpServer

        self.blob_http = BlobHttpServer(self.blobs)
        try:
            await self.blob_http.start()
        except OSError:
            log.exception(
                "the blob HTTP server could not start; blobs stay available on the socket"
            )
            self.blob_http = None

    async def _warm_up(self) -> None:
        """Just after start: load what a first notebook needs, then start the blob HTTP
        server (aiohttp takes ~0.2 s to import). On the loop, one after the other, once
        the socket already answers: imports from several threads at once can deadlock."""
        await asyncio.sleep(0.3)
        _preload_notebook_modules()
        await self._start_blob_http()
        self._write_info()
        self.notebook_channel  # noqa: B018 - builds the rooms and the kernel pool
        if self._kernel_pool is not None:
            self._kernel_pool.start()

    def _write_info(self) -> None:
        write_daemon_info(
            self.paths.info_file,
            {
                "pid": os.getpid(),
                "version": __version__,
                "protocol_version": PROTOCOL_VERSION,
                "socket_path": str(self.paths.socket_path),
                "cache_dir": str(self.paths.cache_dir),
                "started_at": self.started_at,
                "blob_port": self.blob_port,
            },
        )

    def list_rooms(self) -> list[RoomInfo]:
        return self._rooms.list() if self._rooms is not None else []

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until stopped. The caller must hold the DaemonLock."""
        loop = asyncio.get_running_loop()
        # A mask inherited from whoever started us would also reach every kernel.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, f"signal {sig.name}")
        await self.server.start()
        self._write_info()
        log.info(
            "runtimed %s listening on %s (pid %d)", __version__, self.paths.socket_path, os.getpid()
        )
        starts = [asyncio.create_task(pool.start()) for pool in self.pools.values()]
        starts.append(asyncio.create_task(self.blob_collector.run(BLOB_GC_INTERVAL_SECS)))
        starts.append(asyncio.create_task(self.disk.run(DISK_GC_INTERVAL_SECS)))
        starts.append(asyncio.create_task(self._warm_up()))
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: %s", self._stop_reason or "exit")
            for task in starts:
                task.cancel()
            await self.server.close()
            if self.blob_http is not None:
                await self.blob_http.close()
            # Builds stop first: rooms giving their envs back must not start new ones.
            await asyncio.gather(
                *(pool.close() for pool in self.pools.values()), return_exceptions=True
            )
            kernels = [self._rooms.close_all()] if self._rooms is not None else []
            if self._kernel_pool is not None:
                kernels.append(self._kernel_pool.close())
            await asyncio.gather(*kernels, return_exceptions=True)
            if self._history is not None:
                await asyncio.to_thread(self._history.close)
            self.paths.info_file.unlink(missing_ok=True)


def _preload_notebook_modules() -> None:
    import importlib

    for name in (
        "runtimed.daemon.channels.notebook",
        "runtimed.daemon.channels.room_requests",
        "runtimed.daemon.kernels.provider",
        "anyio._backends._asyncio",  # pycrdt's Doc() loads it on first use in a loop
        "nbformat",
    ):
        importlib.import_module(name)
    import nbformat

    nbformat.validate(nbformat.v4.new_notebook())  # type: ignore[no-untyped-call]


def run_daemon(config: DaemonConfig) -> int:
    """Take the singleton lock and serve. Returns a process exit code."""
    config.paths.prepare()
    lock = DaemonLock(config.paths.lock_file)
    lock.acquire()  # raises AlreadyRunningError
    try:
        configure_logging(config.paths.log_file)
        raise_descriptor_limit()
        asyncio.run(Daemon(config).run())
    finally:
        lock.release()
    return 0
