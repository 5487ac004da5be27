"""Blob references in outputs: ``{"blob": sha256, "size": n, "media_type": ...}``.

Pure helpers shared by the daemon (which makes references) and clients (which resolve
them). Where a reference may appear in a cell output:

- ``data[mime]`` of display_data / execute_result: the whole payload. Binary MIME types
  (base64 in nbformat, e.g. ``image/png``) are stored decoded; JSON types as JSON text;
  everything else as UTF-8 text.
- ``text`` of a stream: either a reference, or a list whose items are references and
  strings (spilled chunks of completed lines, then the live tail), to be concatenated.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

BlobRef = dict[str, Any]
Fetch = Callable[[str], bytes]

_TEXTUAL_APPLICATION = ("javascript", "ecmascript", "x-latex", "x-tex", "vnd.jupyter")


def is_ref(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("blob"), str)
        and "size" in value
        and set(value) <= {"blob", "size", "media_type"}
    )


def make_ref(digest: str, size: int, media_type: str) -> BlobRef:
    return {"blob": digest, "size": size, "media_type": media_type}


def is_json_mime(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def is_binary_mime(mime: str) -> bool:
    """Types nbformat carries base64-encoded."""
    if mime.startswith("text/") or is_json_mime(mime) or mime.endswith("+xml"):
        return False
    if mime.startswith(("image/", "audio/", "video/")):
        return True
    if mime.startswith("application/"):
        return not any(t in mime for t in _TEXTUAL_APPLICATION)
    return False


def encode_payload(mime: str, value: Any) -> bytes | None:
    """The bytes to store for ``data[mime]``, or None when it must stay inline."""
    if is_json_mime(mime):
        return json.dumps(value, separators=(",", ":")).encode()
    text = "".join(value) if isinstance(value, list) else value
    if not isinstance(text, str):
        return None
    if is_binary_mime(mime):
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            return None  # not valid base64: leave it as the kernel sent it
    return text.encode()


def decode_payload(mime: str, data: bytes) -> Any:
    """``data[mime]`` as nbformat has it, from the stored bytes."""
    if is_json_mime(mime):
        return json.loads(data)
    if is_binary_mime(mime):
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", errors="replace")


def output_refs(output: Mapping[str, Any]) -> list[BlobRef]:
    """Every blob reference in one output."""
    refs: list[BlobRef] = []
    text: Any = output.get("text")
    if is_ref(text):
        refs.append(dict(text))
    elif isinstance(text, list):
        refs.extend(dict(part) for part in text if is_ref(part))
    for value in (output.get("data") or {}).values():
        if is_ref(value):
            refs.append(dict(value))
    return refs


def resolve_output(output: Mapping[str, Any], fetch: Fetch) -> dict[str, Any]:
    """A copy of ``output`` with every reference replaced by its content (nbformat shape)."""
    out = dict(output)
    text: Any = out.get("text")
    if is_ref(text):
        out["text"] = fetch(text["blob"]).decode("utf-8", errors="replace")
    elif isinstance(text, list) and any(is_ref(p) for p in text):
        out["text"] = "".join(
            fetch(p["blob"]).decode("utf-8", errors="replace") if is_ref(p) else str(p)
            for p in text
        )
    data = out.get("data")
    if isinstance(data, Mapping) and any(is_ref(v) for v in data.values()):
        out["data"] = {
            mime: decode_payload(mime, fetch(v["blob"])) if is_ref(v) else v
            for mime, v in data.items()
        }
    return out


def has_refs(outputs: list[dict[str, Any]]) -> bool:
    return any(output_refs(o) for o in outputs)


#: Stores bytes of a media type and returns their hash; None when they stay inline.
Put = Callable[[bytes, str], "str | None"]


def rough_size(value: Any) -> int:
    """About how many bytes a MIME payload is (strings and lists of strings exactly)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(len(v) for v in value)
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return 0


def refer_payloads(data: dict[str, Any], put: Put, threshold: int) -> None:
    """Replace big and binary MIME payloads of ``data`` by blob references, in place."""
    for mime, value in list(data.items()):
        if is_ref(value) or not (is_binary_mime(mime) or rough_size(value) > threshold):
            continue
        payload = encode_payload(mime, value)
        if payload is None or (len(payload) <= threshold and not is_binary_mime(mime)):
            continue
        digest = put(payload, mime)
        if digest is not None:
            data[mime] = make_ref(digest, len(payload), mime)
        elif len(payload) > threshold:
            data[mime] = f"[{mime} output of {len(payload)} bytes: too large to keep]"


def refer_output(output: dict[str, Any], put: Put, threshold: int) -> dict[str, Any]:
    """An nbformat output with its large parts as references (a file's outputs on load)."""
    out = dict(output)
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = dict(data)
        refer_payloads(out["data"], put, threshold)
    text = out.get("text")
    if out.get("output_type") == "stream" and rough_size(text) > threshold:
        joined = "".join(text) if isinstance(text, list) else str(text)
        digest = put(joined.encode(), "text/plain")
        if digest is not None:
            out["text"] = [make_ref(digest, len(joined.encode()), "text/plain")]
    return out


def refer_notebook_outputs(nb: dict[str, Any], put: Put, threshold: int) -> dict[str, Any]:
    """A notebook file's outputs with large parts moved to blobs (in place; returned), so
    that a file with hundreds of MB of inline outputs opens as a small document."""
    for cell in nb.get("cells", []):
        outputs = cell.get("outputs")
        if isinstance(outputs, list) and outputs:
            cell["outputs"] = [refer_output(o, put, threshold) for o in outputs]
    return nb
