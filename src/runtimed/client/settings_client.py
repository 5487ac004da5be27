"""SettingsClient: read and change the daemon's settings over the settings channel."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Self

from runtimed.client.connection import BlockingConnection
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.notebook import FrameType, pack_json, parse_json, unpack


class SettingsClient:
    """Blocking client for `get` / `set` of settings (dotted keys like ``uv.pool_size``)."""

    def __init__(self, socket_path: str | Path | None = None, timeout: float = 30.0) -> None:
        self._socket_path = socket_path
        self._timeout = timeout
        self._conn: BlockingConnection | None = None
        self._ids = itertools.count(1)

    def _request(self, kind: str, **params: Any) -> Any:
        if self._conn is None:
            self._conn = BlockingConnection.open(self._socket_path, "settings_sync", self._timeout)
        request_id = next(self._ids)
        self._conn.write_frame(
            pack_json(FrameType.REQUEST, {"id": request_id, "type": kind, **params})
        )
        while True:
            frame = self._conn.read_frame()
            if frame is None:
                raise ProtocolError("the daemon closed the settings connection")
            frame_type, payload = unpack(frame)
            if frame_type is not FrameType.RESPONSE:
                continue  # document sync and events are for live replicas, not this client
            response = parse_json(payload, "response")
            if response.get("id") != request_id:
                continue
            if not response.get("ok"):
                raise RuntimedError(
                    response.get("error", "settings request failed"), response.get("code", "error")
                )
            return response.get("result")

    def get_all(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("get")
        return result

    def get(self, key: str) -> Any:
        return self._request("get", key=key)

    def set(self, key: str, value: Any) -> Any:
        """Validate and apply ``key = value``; returns the stored (normalised) value."""
        return self._request("set", key=key, value=value)["value"]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
