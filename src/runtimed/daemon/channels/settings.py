"""The settings channel: y-sync of the settings document, and get/set requests."""

from __future__ import annotations

from pycrdt import create_sync_message, create_update_message

from runtimed.daemon.channels.replies import answer, error_reply_frame
from runtimed.daemon.rooms.peer import Peer
from runtimed.daemon.settings.settings_service import SettingsService
from runtimed.documents.nesting_guard import NestingGuard
from runtimed.documents.sync import apply_sync_frame
from runtimed.errors import ProtocolError
from runtimed.protocol.codec import RequestError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType, pack_json, unpack
from runtimed.protocol.framing import Channel
from runtimed.protocol.handshake import Handshake, handshake_ok
from runtimed.protocol.settings import (
    GetSetting,
    SetSetting,
    SettingsRequest,
    SettingValue,
    decode_settings_request,
)


class SettingsChannel:
    """Every settings peer sees every change; invalid document writes are reverted."""

    def __init__(self, service: SettingsService) -> None:
        self.service = service
        self._peers: dict[int, Peer] = {}
        self._guard = NestingGuard(lambda: service.doc.get_update())
        service.on_doc_update(self._broadcast)

    def _broadcast(self, update: bytes) -> None:
        self._guard.record(update)
        message = create_update_message(update)
        for peer in list(self._peers.values()):
            peer.send(FrameType.NOTEBOOK_SYNC, message)

    async def serve(self, stream: FrameConnection, handshake: Handshake) -> None:
        stream.set_max_frame(Channel.SETTINGS)
        await stream.write_frame(handshake_ok())
        peer = Peer(stream, handshake.client)
        self._peers[peer.id] = peer
        peer.send(FrameType.NOTEBOOK_SYNC, create_sync_message(self.service.doc))
        try:
            while (frame := await stream.read_frame()) is not None:
                await self._handle(peer, frame)
        except ProtocolError as exc:
            _send_error(peer, exc.message, exc.code)
            await peer.drain()
        finally:
            self._peers.pop(peer.id, None)

    async def _handle(self, peer: Peer, frame: bytes) -> None:
        frame_type, payload = unpack(frame)
        if frame_type is FrameType.NOTEBOOK_SYNC:
            self._sync(peer, payload)
            return
        if frame_type is not FrameType.REQUEST:
            raise ProtocolError(
                f"clients may not send {frame_type.name} frames here", "malformed_frame"
            )
        try:
            request = decode_settings_request(payload)
        except RequestError as exc:
            peer.send_frame(error_reply_frame(exc.request_id, exc.message, exc.code))
            return
        tag = type(request).__struct_config__.tag
        peer.send_frame(await answer(request.id, str(tag), lambda: self._request(request)))

    def _sync(self, peer: Peer, payload: bytes) -> None:
        reply = apply_sync_frame(payload, self.service.doc, "settings", self._guard)
        if reply is not None:
            peer.send(FrameType.NOTEBOOK_SYNC, reply)
        elif payload[1] != 0:
            for message in self.service.accept_doc_edits():
                _send_error(peer, message, "invalid_setting")

    def _request(self, request: SettingsRequest) -> SettingValue:
        match request:
            case GetSetting(key=key):
                value = self.service.effective if key is None else self.service.get(key)
                return SettingValue(key=key, value=value)
            case SetSetting(key=key, value=value):
                return SettingValue(key=key, value=self.service.set(key, value))
        raise AssertionError(request)


def _send_error(peer: Peer, message: str, code: str) -> None:
    event = {"event": "error", "message": message, "code": code}
    peer.send(FrameType.EVENT, pack_json(FrameType.EVENT, event)[1:])
