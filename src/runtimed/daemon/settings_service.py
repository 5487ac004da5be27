"""Settings: validated, persisted to settings.json in the config dir, synced to clients.

The daemon owns the truth. Clients change settings with a `set` request (or by writing
the shared doc; invalid writes are reverted). Effective settings = defaults <- file <-
command-line overrides for this run; changes made while running are written to the file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtimed.daemon.rooms.peer import Peer
from runtimed.documents.settings import get_path, normalize, set_path, validate_value
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.framing import Channel
from runtimed.protocol.messages import Handshake
from runtimed.protocol.notebook import FrameType, pack_json, parse_json, unpack
from runtimed.protocol.stream import FramedStream

if TYPE_CHECKING:
    import pycrdt
    from pycrdt import Doc, Map


log = logging.getLogger(__name__)

SettingsListener = Callable[[dict[str, Any], dict[str, Any]], None]


class SettingsService:
    def __init__(self, config_dir: Path, overrides: dict[str, Any]) -> None:
        self.file = config_dir / "settings.json"
        self.file_values = self._read_file()
        self.overrides = overrides
        self.effective = self._compute()
        self._doc: Doc[Any] | None = None
        self._peers: dict[int, Peer] = {}
        self._listeners: list[SettingsListener] = []

    @property
    def doc(self) -> Doc[Any]:
        """The shared settings document, made on first use (pycrdt loads lazily, which
        keeps daemon start fast)."""
        if self._doc is None:
            from pycrdt import Doc

            self._doc = Doc()
            self._write_doc(self.effective)
            self._doc.observe(self._on_update)
        return self._doc

    @property
    def map(self) -> Map[Any]:
        from pycrdt import Map

        settings: Map[Any] = self.doc.get("settings", type=Map)
        return settings

    def _write_doc(self, values: dict[str, Any]) -> None:
        if self._doc is None:
            return
        settings = self.map
        with self._doc.transaction():
            for key, value in values.items():
                if settings.get(key) != value:
                    settings[key] = value

    def _read_file(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.file, exc)
            return {}
        return raw if isinstance(raw, dict) else {}

    def _compute(self) -> dict[str, Any]:
        merged = dict(self.file_values)
        for key, value in self.overrides.items():
            merged = set_path(merged, key, value)
        settings, problems = normalize(merged)
        for problem in problems:
            log.warning("settings: %s (using the default)", problem)
        return settings

    def on_change(self, listener: SettingsListener) -> None:
        """Call ``listener(old, new)`` after every effective change."""
        self._listeners.append(listener)

    def get(self, key: str) -> Any:
        return get_path(self.effective, key)

    def set(self, key: str, value: Any) -> Any:
        """Validate, apply, persist and sync one setting; returns the stored value."""
        value = validate_value(key, value)
        self.file_values = set_path(self.file_values, key, value)
        self.overrides.pop(key, None)
        self._persist()
        self._apply(self._compute())
        return value

    def _persist(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.file.with_name(f".{self.file.name}.tmp")
        tmp.write_text(json.dumps(self.file_values, indent=2, sort_keys=True))
        os.replace(tmp, self.file)

    def _apply(self, new: dict[str, Any]) -> None:
        old, self.effective = self.effective, new
        self._write_doc(new)
        if old != new:
            for listener in self._listeners:
                listener(old, new)

    # --- sync -------------------------------------------------------------------------

    def _on_update(self, event: pycrdt.TransactionEvent) -> None:
        from pycrdt import create_update_message

        message = create_update_message(event.update)
        for peer in list(self._peers.values()):
            peer.send(FrameType.NOTEBOOK_SYNC, message)

    def _accept_doc_edits(self, peer: Peer) -> None:
        """A client wrote the doc directly: keep valid values, revert the rest."""
        current = {key: _plain(self.map.get(key)) for key in list(self.map.keys())}
        proposed = {k: v for k, v in current.items() if self.effective.get(k) != v}
        errors = []
        for top, value in proposed.items():
            flat = _flatten(top, value)
            for key, val in flat.items():
                try:
                    self.file_values = set_path(self.file_values, key, validate_value(key, val))
                except RuntimedError as exc:
                    errors.append(exc.message)
        if proposed and not errors:
            self._persist()
        self._apply(self._compute())  # also rewrites rejected values back
        for message in errors:
            event = {"event": "error", "message": message, "code": "invalid_setting"}
            peer.send(FrameType.EVENT, pack_json(FrameType.EVENT, event)[1:])

    async def serve(self, stream: FramedStream, handshake: Handshake, reply: bytes) -> None:
        from pycrdt import create_sync_message

        stream.set_max_frame(Channel.SETTINGS)
        await stream.write_frame(reply)
        peer = Peer(stream, handshake.client)
        self._peers[peer.id] = peer
        peer.send(FrameType.NOTEBOOK_SYNC, create_sync_message(self.doc))
        try:
            while (frame := await stream.read_frame()) is not None:
                self._handle_frame(peer, frame)
        except ProtocolError as exc:
            event = {"event": "error", "message": exc.message, "code": exc.code}
            peer.send(FrameType.EVENT, pack_json(FrameType.EVENT, event)[1:])
            await peer.drain()
        finally:
            self._peers.pop(peer.id, None)

    def _handle_frame(self, peer: Peer, frame: bytes) -> None:
        frame_type, payload = unpack(frame)
        if frame_type is FrameType.NOTEBOOK_SYNC:
            if len(payload) < 2 or payload[0] != 0:
                raise ProtocolError(
                    "settings sync frame is not a Yjs sync message", "malformed_frame"
                )
            from pycrdt import handle_sync_message

            try:
                reply = handle_sync_message(payload[1:], self.doc)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                raise ProtocolError(f"invalid Yjs sync message: {exc}", "malformed_frame") from None
            if reply is not None:
                peer.send(FrameType.NOTEBOOK_SYNC, reply)
            elif payload[1] != 0:
                self._accept_doc_edits(peer)
            return
        if frame_type is not FrameType.REQUEST:
            raise ProtocolError(
                f"clients may not send {frame_type.name} frames here", "malformed_frame"
            )
        request = parse_json(payload, "request")
        response: dict[str, Any] = {"id": request.get("id"), "ok": True}
        try:
            response["result"] = self._request(request)
        except RuntimedError as exc:
            response = {
                "id": request.get("id"),
                "ok": False,
                "error": exc.message,
                "code": exc.code,
            }
        peer.send(FrameType.RESPONSE, json.dumps(response).encode())

    def _request(self, request: dict[str, Any]) -> Any:
        kind = request.get("type")
        if kind == "get":
            key = request.get("key")
            return self.effective if key is None else self.get(str(key))
        if kind == "set":
            return {
                "key": request.get("key"),
                "value": self.set(str(request.get("key")), request.get("value")),
            }
        raise RuntimedError(
            f"unknown settings request {kind!r}; known: get, set", "unknown_request"
        )


def _plain(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: value}
