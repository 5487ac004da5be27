"""NotebookService: everything behind the notebook channel, built in one place.

Rooms (``RoomRegistry``), their kernels (``RoomKernels`` over the ``KernelPool``, which
sits in front of the ``LocalKernelProvider`` and the ``EnvResolver``), execution history
(``HistoryLog``) and runtimes (``RuntimeRegistry``). The daemon builds it once, in its
start sequence, just after the socket answers (pycrdt, jupyter_client and friends cost
~0.25 s of imports, which must not delay the first pong); a notebook client that comes
earlier waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from runtimed.daemon.blobs import BlobStore
from runtimed.daemon.channels.notebook import NotebookChannel
from runtimed.daemon.channels.room_requests import RoomRequests
from runtimed.daemon.channels.runtimes import RuntimeRequests
from runtimed.daemon.envs import EnvPool
from runtimed.daemon.envs.resolver import EnvResolver
from runtimed.daemon.execution.room_kernel import RoomKernelDeps
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.gateway.gateway_provider import GatewayKernelProvider
from runtimed.daemon.history import HistoryLog, HistoryStore, Retention
from runtimed.daemon.kernels.kernel_pool import KernelPool
from runtimed.daemon.kernels.provider import LocalKernelProvider
from runtimed.daemon.rooms.notebook_loader import BlobPlace, NotebookLoader
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.daemon.runtimes import RuntimeRegistry
from runtimed.daemon.runtimes.runtime_history import RuntimeHistory
from runtimed.daemon.settings.settings_service import SettingsService
from runtimed.daemon.trust.own_notebooks import NotebookKey, stamp_notebook
from runtimed.daemon.trust.trust_gate import TrustGate
from runtimed.daemon.trust.trust_store import TrustStore
from runtimed.documents.blob_refs import refer_notebook_outputs
from runtimed.errors import RuntimedError
from runtimed.paths import RuntimePaths
from runtimed.protocol.control import KernelPoolStatus, RoomInfo


@dataclass(frozen=True)
class NotebookInputs:
    """What the notebook service is built from: the daemon's shared parts."""

    paths: RuntimePaths
    settings: SettingsService
    pools: Mapping[str, EnvPool]
    blobs: BlobStore
    conda_config_file: str | None
    take_timeout: float


class NotebookService:
    """Rooms, their kernels, the kernel pool, history and runtimes of one daemon."""

    def __init__(self, inputs: NotebookInputs) -> None:
        paths, settings, blobs = inputs.paths, inputs.settings, inputs.blobs
        cache = paths.cache_dir
        self.settings = settings
        self.blobs = blobs
        config_dir = settings.file.parent
        self.notebook_key = NotebookKey(config_dir)
        self.history = HistoryLog(HistoryStore(paths.history_file), retention=self._retention)
        self.env_resolver = EnvResolver(
            inputs.pools,
            paths.inline_envs_dir,
            cache,
            default_python_env=settings.value("default_python_env", str),
            conda_channels=settings.value("conda.channels", list),
            conda_config_file=inputs.conda_config_file,
            take_timeout=inputs.take_timeout,
            trust=TrustGate(TrustStore.in_config_dir(config_dir), self.notebook_key),
        )
        local = LocalKernelProvider(
            self.env_resolver, runtime_dir=cache / "kernels", ipython_dir=cache / "ipython"
        )
        self.kernel_pool = KernelPool(
            local,
            self.env_resolver,
            inputs.pools,
            size=settings.value("kernel_pool.size", int),
            default_env=settings.value("default_python_env", str),
            busy=self.any_cell_running,
            pool_dir=cache / "kernel-pool",
        )
        # `gateway:` kernels on a Jupyter Kernel / Enterprise Gateway, the rest local.
        self.gateway = GatewayKernelProvider(
            self.kernel_pool,
            settings.get,
            runtime_dir=cache / "kernels",
            ipython_dir=cache / "ipython",
            pool_size=settings.value("kernel_pool.gateway_size", int),
            busy=self.any_cell_running,
        )
        threshold = settings.value("output_blob_threshold", int)
        self.room_kernels = RoomKernels(
            RoomKernelDeps(
                provider=self.gateway,
                untitled_dir=cache / "untitled",
                blobs=blobs,
                blob_threshold=threshold,
                execution_logs=self.history,
                runtime_observer=RuntimeHistory(self.history),
            )
        )
        self.rooms = RoomRegistry(
            paths.notebook_docs_dir,
            keep_alive_secs=settings.value("keep_alive_secs", float),
            room_kernels=self.room_kernels,
            load_notebook=NotebookLoader(
                self._refer_file_outputs, BlobPlace(blobs.root, blobs.max_size, threshold)
            ),
            on_new_notebook=lambda room: stamp_notebook(self.notebook_key, room.nb),
        )
        self.channel = NotebookChannel(
            self.rooms,
            RoomRequests(self.room_kernels, blob_fetch=blobs.get, trust=self.env_resolver.trust),
        )
        self.runtimes = RuntimeRegistry(self.rooms, self.room_kernels, self.history)
        self.runtime_requests = RuntimeRequests(self.runtimes, self.history)

    def start(self) -> None:
        """History's writer thread and the kernel pool's refills."""
        self.history.start()
        self.kernel_pool.start()
        self.gateway.start_pool()

    async def close(self) -> None:
        """Every room and kernel stops; history is flushed."""
        await asyncio.gather(
            self.rooms.close_all(), self.kernel_pool.close(), return_exceptions=True
        )
        await self.gateway.close()  # after the rooms: their gateway kernels are shut down
        await asyncio.to_thread(self.history.close)

    # --- what the rest of the daemon asks ----------------------------------------------

    def list_rooms(self) -> list[RoomInfo]:
        return self.rooms.list()

    def kernel_pool_status(self) -> KernelPoolStatus:
        return self.kernel_pool.status()

    def open_rooms(self) -> set[str]:
        return set(self.rooms.rooms)

    def live_documents(self) -> list[bytes]:
        """Every open room's notebook and runtime document (widget buffers), for the blob
        collector."""
        rooms = list(self.rooms.rooms.values())
        return [d.get_update() for room in rooms for d in (room.nb.doc, room.runtime)]

    def envs_in_use(self) -> set[str]:
        """Env dirs kernels run in (rooms' and the kernel pool's): never collected."""
        return self.kernel_pool.env_paths() | self.room_kernels.env_paths()

    def any_cell_running(self) -> bool:
        return any(room.runtime_state.queue()["executing"] for room in self.rooms.rooms.values())

    def settings_changed(self) -> None:
        self.kernel_pool.wake()
        self.gateway.pool.wake()

    # --- internals ---------------------------------------------------------------------

    def _retention(self) -> Retention:
        return Retention(
            float(self.settings.get("history.max_age_days")),
            int(self.settings.get("history.max_executions")),
        )

    def _refer_file_outputs(self, nb: dict[str, object]) -> dict[str, object]:
        """Large outputs of a notebook file go to the blob store as it is loaded."""

        def put(data: bytes, media_type: str) -> str | None:
            try:
                return self.blobs.put(data, media_type)
            except (RuntimedError, OSError):
                return None  # it stays inline

        threshold = int(self.settings.get("output_blob_threshold"))
        return refer_notebook_outputs(nb, put, threshold)
