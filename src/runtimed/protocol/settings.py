"""Settings-channel requests and replies (the frames are typed as on the notebook
channel: 0x00 y-sync of the settings document, 0x01 request, 0x02 reply, 0x03 event)."""

from __future__ import annotations

from typing import Any

import msgspec

from runtimed.protocol.codec import decode_request
from runtimed.protocol.room import RequestId


class _Request(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    id: RequestId = None


class GetSetting(_Request, frozen=True, tag="get"):
    #: A dotted key such as ``uv.pool_size``; None: every setting.
    key: str | None = None


class SetSetting(_Request, frozen=True, tag="set"):
    key: str
    value: Any


SettingsRequest = GetSetting | SetSetting


class SettingValue(msgspec.Struct, frozen=True, tag="value", tag_field="type"):
    key: str | None
    value: Any


class SettingsReply(msgspec.Struct, frozen=True, omit_defaults=True):
    id: RequestId
    ok: bool
    result: SettingValue | None = None
    error: str | None = None
    code: str | None = None


_request_decoder = msgspec.json.Decoder(SettingsRequest)
_reply_decoder = msgspec.json.Decoder(SettingsReply)


def decode_settings_request(data: bytes) -> SettingsRequest:
    return decode_request(_request_decoder, data, "settings request", SettingsRequest)  # type: ignore[no-any-return]


def decode_settings_reply(data: bytes) -> SettingsReply:
    return _reply_decoder.decode(data)
