"""The notebook channel: handshake into a room, then frames until the peer leaves."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from runtimed.daemon.rooms.notebook_room import NotebookRoom, RequestHandler
from runtimed.daemon.rooms.peer import Peer
from runtimed.errors import ProtocolError, RuntimedError
from runtimed.protocol.framing import Channel
from runtimed.protocol.messages import Handshake
from runtimed.protocol.notebook import FrameType, pack_json
from runtimed.protocol.stream import FramedStream

if TYPE_CHECKING:
    from runtimed.daemon.app import Daemon

log = logging.getLogger(__name__)


class NotebookChannel:
    """Serves `notebook_sync {notebook_id}` and `open_notebook {path}` connections."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def serve(self, stream: FramedStream, handshake: Handshake) -> None:
        stream.set_max_frame(Channel.NOTEBOOK)
        room = await self.daemon.rooms.open(handshake)
        reset = handshake.epoch is not None and handshake.epoch != room.epoch
        await stream.write_frame(
            self.daemon.handshake_reply(
                notebook_id=room.notebook_id,
                epoch=room.epoch,
                path=room.path,
                reset=reset,
            )
        )
        peer = Peer(stream, handshake.client)
        room.join(peer)
        try:
            while (frame := await stream.read_frame()) is not None:
                room.handle_frame(peer, frame)
        except ProtocolError as exc:
            log.info("closing %s: %s", peer, exc.message)
            event = {"event": "error", "message": exc.message, "code": exc.code}
            peer.send(FrameType.EVENT, pack_json(FrameType.EVENT, event)[1:])
            await peer.drain()
        finally:
            room.leave(peer)


# --- basic room requests ---------------------------------------------------------------


async def _sync(room: NotebookRoom, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
    """A round trip: every frame the peer sent before it has been applied and logged."""
    return {"cells": len(room.nb.cells)}


async def _save(room: NotebookRoom, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
    path = request.get("path")
    if path is not None and not isinstance(path, str):
        raise RuntimedError("save: path must be a string", "invalid_request")
    written = room.save_ipynb(os.path.abspath(path) if path else None)
    room.broadcast_event({"event": "saved", "path": written}, exclude=None)
    return {"path": written}


async def _info(room: NotebookRoom, peer: Peer, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "notebook_id": room.notebook_id,
        "path": room.path,
        "epoch": room.epoch,
        "peers": len(room.peers),
        "cells": len(room.nb.cells),
    }


ROOM_REQUESTS: dict[str, RequestHandler] = {
    "sync": _sync,
    "save": _save,
    "get_info": _info,
}
