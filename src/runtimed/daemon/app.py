"""The daemon: the wiring of pools, settings, blobs, the notebook service and the
socket server, and their lifecycle.

The notebook service (rooms, kernels, history; pycrdt, jupyter_client and friends) is
built by the start sequence just after the socket answers, so that the first ping is
quick; a notebook client that comes earlier waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from runtimed.daemon.config import DaemonConfig
from runtimed.daemon.disk_keeper import DiskKeeper
from runtimed.daemon.envs import EnvPool, UvEnvBuilder
from runtimed.daemon.envs.conda_builder import CondaEnvBuilder
from runtimed.daemon.envs.inline_envs import InlineEnvs
from runtimed.daemon.http.listen import listen_from
from runtimed.daemon.logs import configure_logging
from runtimed.daemon.settings.settings_service import SettingsService
from runtimed.daemon.singleton import DaemonLock, write_daemon_info
from runtimed.daemon.warm_up import preload_notebook_modules, release_freed_memory
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.control import DaemonInfo, RoomInfo, StatusReply
from runtimed.protocol.framing import PROTOCOL_VERSION
from runtimed.protocol.handshake import Handshake
from runtimed.transport.unix_server import UnixSocketServer, raise_descriptor_limit
from runtimed.version import __version__

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aiohttp import web

    from runtimed.daemon.blobs.http_server import BlobHttpServer
    from runtimed.daemon.channels.runtimes import RuntimeRequests
    from runtimed.daemon.channels.settings import SettingsChannel
    from runtimed.daemon.http.http_server import HttpServer
    from runtimed.daemon.notebook_service import NotebookService

    #: Routes of the HTTP server, and whether they are public (no token).
    HttpRoutes = tuple[Iterable[web.AbstractRouteDef], bool]

log = logging.getLogger("runtimed")

BLOB_GC_INTERVAL_SECS = float(os.environ.get("RUNTIMED_BLOB_GC_INTERVAL", "600"))
DISK_GC_INTERVAL_SECS = float(os.environ.get("RUNTIMED_DISK_GC_INTERVAL", "3600"))
#: The notebook service is built this long after the socket answers, unless a notebook
#: client asks for it sooner: the first ping does not wait for its imports.
WARM_UP_DELAY_SECS = 0.3


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
        self.notebooks: NotebookService | None = None
        self._notebooks_built: asyncio.Future[NotebookService] | None = None
        self._notebooks_wanted = asyncio.Event()
        self._settings_channel: SettingsChannel | None = None
        self.blobs = BlobStore(self.paths.blobs_dir, int(effective["blob_max_bytes"]))
        self.blob_http: BlobHttpServer | None = None
        # Checked now: an unsafe address or a missing TLS file stops the start.
        self.http_listen = listen_from(
            str(effective["http"]["listen"]),
            config.tls_cert,
            config.tls_key,
            config.insecure_no_tls,
        )
        self.http: HttpServer | None = None
        self.blob_collector = BlobCollector(
            self.blobs,
            self.paths.notebook_docs_dir,
            live_documents=self._live_documents,
            grace_secs=self.settings.value("blob_gc_grace_secs", float),
        )
        self.disk = DiskKeeper(
            InlineEnvs(self.paths.inline_envs_dir, self._envs_in_use),
            self.pools,
            self.paths.notebook_docs_dir,
            self.paths.blobs_dir,
            open_rooms=self._open_rooms,
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
            runtimes=self._runtime_requests,
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
        if self.notebooks is not None:
            self.notebooks.settings_changed()
        for name, make in (("uv", self._uv_builder), ("conda", self._conda_builder)):
            if old[name] == new[name]:
                continue
            size_only = {**old[name], "pool_size": 0} == {**new[name], "pool_size": 0}
            builder = None if size_only else make(new)
            self.pools[name].reconfigure(builder=builder, target=int(new[name]["pool_size"]))

    # --- the notebook service ----------------------------------------------------------

    def _build_notebooks(self) -> NotebookService:
        from runtimed.daemon.notebook_service import NotebookInputs, NotebookService

        return NotebookService(
            NotebookInputs(
                paths=self.paths,
                settings=self.settings,
                pools=self.pools,
                blobs=self.blobs,
                conda_config_file=self.config.conda_config_file,
                take_timeout=self.config.pool.take_timeout_secs,
            )
        )

    async def _notebook_service(self) -> NotebookService:
        """The notebook service, once the start sequence has built it (at once if a
        notebook client is waiting)."""
        assert self._notebooks_built is not None, "the daemon is not running"
        self._notebooks_wanted.set()
        return await asyncio.shield(self._notebooks_built)

    async def _runtime_requests(self) -> RuntimeRequests:
        return (await self._notebook_service()).runtime_requests

    def _open_rooms(self) -> set[str]:
        return self.notebooks.open_rooms() if self.notebooks is not None else set()

    def _live_documents(self) -> list[bytes]:
        return self.notebooks.live_documents() if self.notebooks is not None else []

    def _envs_in_use(self) -> set[str]:
        return self.notebooks.envs_in_use() if self.notebooks is not None else set()

    async def _serve_notebook(self, stream: FrameConnection, handshake: Handshake) -> None:
        await (await self._notebook_service()).channel.serve(stream, handshake)

    async def _serve_settings(self, stream: FrameConnection, handshake: Handshake) -> None:
        if self._settings_channel is None:
            from runtimed.daemon.channels.settings import SettingsChannel

            self._settings_channel = SettingsChannel(self.settings)
        await self._settings_channel.serve(stream, handshake)

    # --- what the control channel sees ---------------------------------------------------

    def status(self) -> StatusReply:
        pools = {name: pool.status() for name, pool in self.pools.items()}
        notebooks = self.notebooks
        rooms = len(notebooks.open_rooms()) if notebooks is not None else 0
        kernels = notebooks.kernel_pool_status() if notebooks is not None else None
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
            http_url=self.http_url,
        )

    @property
    def http_url(self) -> str | None:
        return self.http.url if self.http is not None else None

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

    # --- the HTTP server ----------------------------------------------------------------

    def _http_routes(self) -> list[HttpRoutes]:
        """Every route of the HTTP server, with whether it is public (no token): the one
        place where the REST API and the websocket endpoints register. Their handlers get
        the notebook service through ``self._notebook_service`` (awaitable)."""
        from runtimed.daemon.http.daemon_routes import health_routes, status_routes
        from runtimed.daemon.http.rest_api import RestApi
        from runtimed.daemon.http.web_pages import WebPages
        from runtimed.daemon.http.ws_endpoint import ws_routes
        from runtimed.daemon.http.yjs_endpoint import yjs_routes
        from runtimed.daemon.http.yjs_runtime_endpoint import runtime_yjs_routes

        rest = RestApi(self._notebook_service, self.blobs)
        return [
            (health_routes(), True),
            (status_routes(self.status, self.info), False),
            (rest.routes(), False),
            (rest.ws_routes(), False),
            (ws_routes(self.server.dispatch), False),
            (yjs_routes(self.server.dispatch), False),
            (runtime_yjs_routes(self.server.dispatch), False),
            (WebPages(self._notebook_service, lambda: self.blob_port).routes(), False),
        ]

    async def _start_http(self) -> None:
        if self.http_listen is None:
            return
        from runtimed.daemon.http.http_server import start_http_server

        self.http = await start_http_server(
            self.http_listen, self.paths.cache_dir, self._allowed_origins, self._http_routes()
        )

    def _allowed_origins(self) -> list[str]:
        return list(self.settings.get("http.allowed_origins"))

    async def _warm_up(self) -> None:
        """Just after start (or at once when a notebook client is waiting): build the
        notebook service, then start the blob HTTP server and the HTTP server (aiohttp
        takes ~0.2 s to import). On the loop, one after the other, once the socket
        already answers: imports from several threads at once can deadlock."""
        assert self._notebooks_built is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._notebooks_wanted.wait(), WARM_UP_DELAY_SECS)
        try:
            self.notebooks = self._build_notebooks()
            preload_notebook_modules()
        except BaseException as exc:
            self._notebooks_built.set_exception(exc)
            raise
        self.notebooks.start()
        self._notebooks_built.set_result(self.notebooks)
        await self._start_blob_http()
        await self._start_http()
        self._write_info()
        release_freed_memory()

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
                "http_url": self.http_url,
            },
        )

    def list_rooms(self) -> list[RoomInfo]:
        return self.notebooks.list_rooms() if self.notebooks is not None else []

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
        self._notebooks_built = loop.create_future()
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
            if self.http is not None:  # before the notebook service its routes use
                await self.http.close()
            # Builds stop first: rooms giving their envs back must not start new ones.
            await asyncio.gather(
                *(pool.close() for pool in self.pools.values()), return_exceptions=True
            )
            if self.notebooks is not None:
                await self.notebooks.close()
            self.paths.info_file.unlink(missing_ok=True)


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
