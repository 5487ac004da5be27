"""JSON encoding of protocol messages, and decoding into typed unions with errors a
person can act on (decoded once, at the channel that receives them)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from runtimed.errors import ProtocolError, RuntimedError

_encoder = msgspec.json.Encoder()


def encode(msg: msgspec.Struct | dict[str, Any]) -> bytes:
    return _encoder.encode(msg)


def known_tags(union: Any) -> list[str]:
    """The ``type`` tags of a union of tagged Structs."""
    return [t.__struct_config__.tag for t in union.__args__]


def decode(decoder: msgspec.json.Decoder[Any], data: bytes, what: str, union: Any) -> Any:
    """Decode ``data``; ProtocolError (the connection closes) on anything malformed."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        if "`$.type`" in str(exc):
            raise ProtocolError(
                f"unknown {what} type ({exc}); known: {', '.join(known_tags(union))}",
                code="unknown_request",
            ) from exc
        raise ProtocolError(f"invalid {what}: {exc}", code="invalid_request") from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid JSON in {what}: {exc}", code="invalid_json") from exc


class RequestError(RuntimedError):
    """A well-formed frame holding a request that cannot be served: the peer gets an
    error reply to ``request_id`` and the connection stays open."""

    def __init__(self, request_id: int | str | None, message: str, code: str) -> None:
        super().__init__(message, code)
        self.request_id = request_id


def decode_request(decoder: msgspec.json.Decoder[Any], data: bytes, what: str, union: Any) -> Any:
    """A request of a request/reply channel (it carries an ``id``).

    Not JSON or not an object: ProtocolError. An unknown type or bad fields: RequestError,
    answered to the request's ``id``.
    """
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        request_id = _request_id(data)
        if "`$.type`" in str(exc):
            raise RequestError(
                request_id,
                f"unknown {what} type ({exc}); known: {', '.join(known_tags(union))}",
                "unknown_request",
            ) from None
        raise RequestError(request_id, f"invalid {what}: {exc}", "invalid_request") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid JSON in {what}: {exc}", code="invalid_json") from exc


def _request_id(data: bytes) -> int | str | None:
    try:
        raw = json.loads(data)
    except ValueError:
        raise ProtocolError("invalid JSON in request", "invalid_json") from None
    if not isinstance(raw, dict):
        raise ProtocolError("a request must be a JSON object", "invalid_request")
    value = raw.get("id")
    return value if isinstance(value, int | str) else None
