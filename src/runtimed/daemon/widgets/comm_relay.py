"""CommRelay: the daemon as the one frontend of a room kernel's widget comms.

The kernel's ``comm_open`` / ``comm_msg`` / ``comm_close`` for the ``jupyter.widget``
target become widget models in the room's runtime document (``documents/widgets.py``):
every client, and one that joins later, reads each live widget at its current state.

- Coalescing: a model's entry is one dict updated in place (latest value of every key
  wins) and handed to ``RuntimeState``, which writes it when its batch goes out (every
  20 ms, or before any response or event). A kernel sending 100,000 updates costs a dict
  update each and one document write per batch: the document never holds more than the
  latest state (Yjs merges the overwritten values' tombstones into a few bytes).
- Clients change a model through the room (``set_widget_state``): the daemon merges the
  change into the entry (every peer sees it), then sends the kernel one ``comm_msg``
  (``method: update``). ipywidgets answers a frontend's update with ``echo_update``
  (for *other* frontends); the daemon is the only frontend and already has it, so echoes
  are dropped, never written back. A value the kernel changes in return (validation, an
  observer) comes as an ordinary ``update`` and is applied.
- Custom messages (``method: custom``, e.g. a button's click) go to the kernel as they
  are; the kernel's custom messages reach the room's peers as the event
  ``widget_message``.
- Binary buffers (``buffer_paths``), the kernel's or a client's, are stored as blobs and
  kept beside the JSON state; a client's go to the kernel as the comm message's buffers.
  An anywidget's code (``_esm``, ``_css``) is stored as a blob too (``anywidget_code.py``).
- A restart, death or shutdown of the kernel clears every model (:meth:`clear`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from runtimed.daemon.kernels.router import COMM_TYPES
from runtimed.daemon.widgets.anywidget_code import is_anywidget, take_code
from runtimed.documents.blob_refs import make_ref
from runtimed.documents.widgets import (
    WIDGET_TARGET,
    BufferPath,
    Entry,
    merge_state,
    new_entry,
)
from runtimed.errors import RuntimedError

log = logging.getLogger(__name__)

BUFFER_MEDIA_TYPE = "application/octet-stream"

Message = dict[str, Any]
EventSink = Callable[[dict[str, Any]], None]


class CommKernel(Protocol):
    """What the relay needs of a kernel (``KernelSession`` is one)."""

    def send_shell(
        self, msg_type: str, content: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> str: ...


class WidgetSink(Protocol):
    """Where models are written (``RuntimeState``: batched into the runtime document)."""

    def set_widget(self, model_id: str, entry: dict[str, Any] | None) -> None: ...

    def clear_widgets(self) -> None: ...


class BufferSink(Protocol):
    """Stores a binary buffer, returns its SHA-256 (``BlobStore``)."""

    def put(self, data: bytes, media_type: str) -> str: ...


def is_comm_message(msg: Mapping[str, Any]) -> bool:
    return msg.get("msg_type") in COMM_TYPES


class CommRelay:
    """The widget models of one room's kernel (see the module docstring)."""

    def __init__(
        self,
        sink: WidgetSink,
        kernel: Callable[[], CommKernel | None],
        blobs: BufferSink | None = None,
        broadcast: EventSink | None = None,
    ) -> None:
        """``kernel()``: the running kernel, or None when none runs."""
        self.sink = sink
        self.kernel = kernel
        self.blobs = blobs
        self.broadcast = broadcast
        self._models: dict[str, Entry] = {}
        #: Updates the kernel sent (echoes excluded), for the benches and tests.
        self.kernel_updates = 0

    # --- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def state(self, model_id: str) -> dict[str, Any]:
        """A model's JSON state now (buffers apart)."""
        return dict(self._require(model_id)["state"])

    # --- from the kernel -----------------------------------------------------------------

    def on_kernel_message(self, msg: Message) -> None:
        """One comm message from the kernel's IOPub."""
        content = msg.get("content") or {}
        comm_id = content.get("comm_id")
        if not isinstance(comm_id, str) or not comm_id:
            return
        kind = msg.get("msg_type")
        if kind == "comm_open":
            self._open(comm_id, content, msg.get("buffers") or [])
        elif kind == "comm_msg":
            self._message(comm_id, content, msg.get("buffers") or [])
        elif kind == "comm_close" and self._models.pop(comm_id, None) is not None:
            self.sink.set_widget(comm_id, None)

    def _open(self, comm_id: str, content: Mapping[str, Any], buffers: list[Any]) -> None:
        target = content.get("target_name")
        if target != WIDGET_TARGET:
            log.debug("comm %s of target %r is not a widget; not kept", comm_id, target)
            return
        data = _dict(content.get("data"))
        entry = new_entry(target)
        state = _dict(data.get("state"))
        stored = self._buffers(data.get("buffer_paths"), buffers) + self._code(state, state)
        merge_state(entry, state, stored)
        self._models[comm_id] = entry
        self.sink.set_widget(comm_id, entry)

    def _message(self, comm_id: str, content: Mapping[str, Any], buffers: list[Any]) -> None:
        entry = self._models.get(comm_id)
        if entry is None:
            return  # a comm that is not a widget
        data = _dict(content.get("data"))
        method = data.get("method")
        if method == "update":
            state = _dict(data.get("state"))
            stored = self._buffers(data.get("buffer_paths"), buffers)
            stored += self._code(entry["state"], state)  # takes the code out of state
            merge_state(entry, state, stored)
            self.kernel_updates += 1
            self.sink.set_widget(comm_id, entry)  # written with its batch: latest wins
        elif method == "custom" and self.broadcast is not None:
            stored = self._buffers([[i] for i in range(len(buffers))], buffers)
            content_ = data.get("content")
            self.broadcast(
                {
                    "event": "widget_message",
                    "model_id": comm_id,
                    "content": content_,
                    "buffers": stored,
                }
            )
        # "echo_update": our own change coming back (see the module docstring).

    def _buffers(self, paths: Any, buffers: list[Any]) -> list[dict[str, Any]]:
        """The message's binary buffers, stored, each with its path in the state."""
        if not isinstance(paths, list) or not buffers:
            return []
        stored = []
        for path, buffer in zip(paths, buffers, strict=False):
            data = bytes(buffer)  # a view of the received frame: copy before it goes
            stored.append({"path": path if isinstance(path, list) else [path], **self._put(data)})
        return stored

    def _code(self, model: Mapping[str, Any], state: dict[str, Any]) -> list[dict[str, Any]]:
        """An anywidget's code taken out of ``state`` (``model``: its state so far) and
        stored."""
        if not is_anywidget(dict(model)) and not is_anywidget(state):
            return []
        return [
            {"path": [key], **self._put(data, media_type)}
            for key, data, media_type in take_code(state)
        ]

    def _put(self, data: bytes, media_type: str = BUFFER_MEDIA_TYPE) -> dict[str, Any]:
        if self.blobs is not None:
            try:
                return make_ref(self.blobs.put(data, media_type), len(data), media_type)
            except (RuntimedError, OSError) as exc:
                log.warning("a widget buffer stays inline: %s", exc)
        return {"base64": base64.b64encode(data).decode("ascii"), "media_type": media_type}

    # --- from clients --------------------------------------------------------------------

    def set_state(
        self,
        model_id: str,
        state: Mapping[str, Any],
        buffers: Sequence[tuple[BufferPath, bytes]] = (),
    ) -> None:
        """A client changes a model: every peer sees it, the kernel gets it once.
        ``buffers``: binary values, each with its path in the state (ipywidgets'
        ``buffer_paths``)."""
        entry = self._require(model_id)
        if not isinstance(state, Mapping) or not (state or buffers):
            raise RuntimedError(
                "set_widget_state: state must be a non-empty object of trait names to values",
                "invalid_request",
            )
        paths = [list(path) for path, _ in buffers]
        for path in paths:
            if not path or not all(isinstance(p, str | int) for p in path):
                raise RuntimedError(
                    f"set_widget_state: a buffer path must be a non-empty list of keys and "
                    f"indexes, not {path!r}",
                    "invalid_request",
                )
        changes = dict(state)
        data = [bytes(b) for _, b in buffers]
        message = {"method": "update", "state": changes, "buffer_paths": paths}
        self._send(model_id, message, data)
        merge_state(entry, changes, self._buffers(paths, data))
        self.sink.set_widget(model_id, entry)

    def send_custom(self, model_id: str, content: Any, buffers: Sequence[bytes] = ()) -> None:
        """A custom message to the kernel's model (a button's click:
        ``{"event": "click"}``), with its binary ``buffers``."""
        self._require(model_id)
        self._send(model_id, {"method": "custom", "content": content}, buffers)

    def _send(self, model_id: str, data: dict[str, Any], buffers: Sequence[bytes] = ()) -> None:
        kernel = self.kernel()
        if kernel is None:
            raise RuntimedError("no kernel is running in this notebook", "no_kernel")
        kernel.send_shell("comm_msg", {"comm_id": model_id, "data": data}, buffers)

    def _require(self, model_id: str) -> Entry:
        entry = self._models.get(model_id)
        if entry is None:
            raise RuntimedError(
                f"no widget {model_id!r} in this notebook (Session.widgets() lists the live "
                "ones; a kernel restart closes them all)",
                "not_found",
            )
        return entry

    # --- Output widgets (daemon/widgets/output_capture.py) ----------------------------------

    def capturing(self, msg_id: str) -> str | None:
        """The Output widget whose ``msg_id`` is ``msg_id`` (it captures that request's
        outputs, as a frontend's OutputModel does), or None."""
        for model_id, entry in self._models.items():
            state = entry["state"]
            if state.get("msg_id") == msg_id and state.get("_model_name") == "OutputModel":
                return model_id
        return None

    def set_from_frontend(self, model_id: str, state: Mapping[str, Any]) -> None:
        """A change the daemon makes as the frontend (captured outputs): every peer sees
        it; the kernel is not told (ipywidgets' Output reads no ``outputs`` back)."""
        entry = self._models.get(model_id)
        if entry is not None:
            merge_state(entry, state)
            self.sink.set_widget(model_id, entry)

    # --- the kernel's life ---------------------------------------------------------------

    def clear(self) -> None:
        """The kernel restarted, died or stopped: its comms are gone."""
        if self._models:
            self._models.clear()
            self.sink.clear_widgets()


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}
