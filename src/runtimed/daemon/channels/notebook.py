"""The notebook channel: handshake into a room, then frames until the peer leaves.

Document and awareness frames go to the room (it only syncs); requests are decoded here,
once, and answered by ``RoomRequests``.
"""

from __future__ import annotations

import logging

from runtimed import timeline
from runtimed.daemon.channels.replies import answer, error_reply_frame
from runtimed.daemon.channels.room_requests import RoomRequests
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.peer import Peer
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.errors import ProtocolError
from runtimed.protocol.codec import RequestError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType, pack_json, unpack
from runtimed.protocol.framing import Channel
from runtimed.protocol.handshake import Handshake, handshake_ok
from runtimed.protocol.room import RoomRequest, decode_room_request

log = logging.getLogger(__name__)


class NotebookChannel:
    """Serves `notebook_sync {notebook_id}` and `open_notebook {path}` connections."""

    def __init__(self, rooms: RoomRegistry, requests: RoomRequests) -> None:
        self.rooms = rooms
        self.requests = requests

    async def serve(self, stream: FrameConnection, handshake: Handshake) -> None:
        stream.set_max_frame(Channel.NOTEBOOK)
        room = await self.rooms.open(handshake)
        reset = handshake.epoch is not None and handshake.epoch != room.epoch
        await stream.write_frame(
            handshake_ok(
                notebook_id=room.notebook_id, epoch=room.epoch, path=room.file.path, reset=reset
            )
        )
        peer = Peer(stream, handshake.client)
        room.join(peer)
        try:
            while (frame := await stream.read_frame()) is not None:
                self._handle(room, peer, frame)
        except ProtocolError as exc:
            log.info("closing %s: %s", peer, exc.message)
            event = {"event": "error", "message": exc.message, "code": exc.code}
            peer.send(FrameType.EVENT, pack_json(FrameType.EVENT, event)[1:])
            await peer.drain()
        finally:
            peer.closed = True  # a prompt asked of it meanwhile is answered EOF
            self.requests.peer_left(room, peer)
            room.leave(peer)

    def _handle(self, room: NotebookRoom, peer: Peer, frame: bytes) -> None:
        frame_type, payload = unpack(frame)
        if timeline.ENABLED:
            timeline.stamp(f"recv.{frame_type.name}")
        if frame_type is not FrameType.REQUEST:
            room.handle_frame(peer, frame_type, payload)
            if timeline.ENABLED:
                timeline.stamp(f"applied.{frame_type.name}")
            return
        try:
            request = decode_room_request(payload)
        except RequestError as exc:
            peer.send_frame(error_reply_frame(exc.request_id, exc.message, exc.code))
            return
        room.spawn(self._answer(room, peer, request))

    async def _answer(self, room: NotebookRoom, peer: Peer, request: RoomRequest) -> None:
        kind = type(request).__struct_config__.tag
        if timeline.ENABLED:
            timeline.stamp(f"request.{kind}")
        reply = await answer(
            request.id, str(kind), lambda: self.requests.handle(room, request, peer)
        )
        room.runtime_state.flush()  # a response never gets ahead of the state it reports
        peer.send_frame(reply)
        if timeline.ENABLED:
            timeline.stamp(f"answered.{kind}")
