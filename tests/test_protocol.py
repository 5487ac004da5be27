"""Wire protocol v1 against a real daemon: every kind of bad input gets an error frame
and a close, and the daemon keeps serving everyone else."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import DaemonProcess
from runtimed.protocol.framing import PREAMBLE, Channel

pytestmark = pytest.mark.daemon

HANDSHAKE_POOL = json.dumps({"channel": "pool"}).encode()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the whole module; pools empty (nothing here needs an env)."""
    d = DaemonProcess(
        tmp_path_factory.mktemp("proto") / "cache",
        ["--uv-pool-size", "0", "--conda-pool-size", "0"],
    )
    d.start()
    yield d
    d.stop()


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def exchange(path: Path, data: bytes, half_close: bool = True, timeout: float = 10.0) -> bytes:
    """Send ``data``, signal end of input, and read everything until the daemon closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may close on us mid-send (oversized frame); read what it said
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def split_frames(data: bytes) -> list[Any]:
    """Decode the daemon's reply stream; it must be whole JSON frames, nothing else."""
    frames = []
    while data:
        assert len(data) >= 4, f"trailing bytes {data!r}"
        (n,) = struct.unpack(">I", data[:4])
        assert len(data) >= 4 + n, f"truncated reply frame {data!r}"
        frames.append(json.loads(data[4 : 4 + n]))
        data = data[4 + n :]
    return frames


def single_error(path: Path, data: bytes, **kw: Any) -> dict[str, Any]:
    frames = split_frames(exchange(path, data, **kw))
    errors = [f for f in frames if f.get("type") == "error" or f.get("ok") is False]
    assert errors, f"no error frame in {frames!r}"
    assert errors[-1] is frames[-1], "the error must be the last frame before the close"
    err: dict[str, Any] = errors[-1]
    assert err["message"] and err["code"]
    return err


def assert_still_serving(d: DaemonProcess) -> None:
    with d.client() as client:
        assert client.ping().protocol_version == 1


def test_good_handshake_and_ping(daemon: DaemonProcess) -> None:
    data = PREAMBLE + frame(HANDSHAKE_POOL) + frame(b'{"type": "ping"}')
    hello, pong = split_frames(exchange(daemon.socket_path, data))
    assert hello["ok"] is True and hello["protocol_version"] == 1 and hello["daemon_version"]
    assert pong["type"] == "pong" and pong["protocol_version"] == 1


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "bad_preamble", "preamble"),
        (b"RU", "bad_preamble", "preamble"),
        (b"RUNT\x02" + frame(HANDSHAKE_POOL), "version_mismatch", "version 2"),
        (b"RUNT\x00", "version_mismatch", "version 0"),
        (PREAMBLE + struct.pack(">I", 100) + b'{"chan', "truncated_frame", "inside a frame"),
        (PREAMBLE + struct.pack(">I", 2**31) + b"xx", "frame_too_large", "exceeds"),
        (PREAMBLE + frame(b"{not json"), "invalid_json", "JSON"),
        (PREAMBLE + frame(b"\xff\xfe\x00"), "invalid_json", "JSON"),
        (PREAMBLE + frame(b"[1, 2]"), "invalid_request", "handshake"),
        (PREAMBLE + frame(b'{"channel": "teleport"}'), "unknown_channel", "channel"),
        (PREAMBLE + frame(HANDSHAKE_POOL) + frame(b"nope"), "invalid_json", "JSON"),
        (
            PREAMBLE + frame(HANDSHAKE_POOL) + frame(b'{"type": "dance"}'),
            "unknown_request",
            "dance",
        ),
        (PREAMBLE + frame(HANDSHAKE_POOL) + frame(b'{"kind": "ping"}'), "invalid_request", "type"),
        (
            PREAMBLE + frame(HANDSHAKE_POOL) + frame(b'{"type": "take", "env_type": "pixi"}'),
            "invalid_request",
            "env_type",
        ),
        (
            PREAMBLE + frame(HANDSHAKE_POOL) + struct.pack(">I", Channel.POOL + 1),
            "frame_too_large",
            "exceeds",
        ),
        (
            PREAMBLE + frame(HANDSHAKE_POOL) + struct.pack(">I", 50) + b"{}",
            "truncated_frame",
            "inside a frame",
        ),
    ],
    ids=[
        "http-preamble",
        "short-preamble",
        "version-2",
        "version-0",
        "truncated-handshake",
        "oversized-handshake",
        "handshake-not-json",
        "handshake-not-utf8",
        "handshake-array",
        "unknown-channel",
        "request-not-json",
        "unknown-request-type",
        "request-without-type",
        "bad-env-type",
        "oversized-request",
        "truncated-request",
    ],
)
def test_bad_input_gets_error_frame_and_close(
    daemon: DaemonProcess, data: bytes, code: str, words: str
) -> None:
    err = single_error(daemon.socket_path, data)
    assert err["code"] == code, err
    assert words.lower() in err["message"].lower(), err
    assert_still_serving(daemon)


def test_oversized_frame_is_refused_before_the_body_arrives(daemon: DaemonProcess) -> None:
    # Announce 1 GiB and never send it: the daemon must answer without waiting for it.
    data = PREAMBLE + frame(HANDSHAKE_POOL) + struct.pack(">I", 2**30)
    err = single_error(daemon.socket_path, data, half_close=False, timeout=5)
    assert err["code"] == "frame_too_large"
    assert_still_serving(daemon)


def test_unknown_request_lists_known_types(daemon: DaemonProcess) -> None:
    err = single_error(
        daemon.socket_path, PREAMBLE + frame(HANDSHAKE_POOL) + frame(b'{"type": "dance"}')
    )
    for known in ("ping", "status", "take", "return", "flush_pool", "shutdown"):
        assert known in err["message"]


def test_bad_client_does_not_disturb_a_concurrent_one(daemon: DaemonProcess) -> None:
    with daemon.client() as good:
        good.ping()
        single_error(daemon.socket_path, b"\x00" * 64)
        single_error(daemon.socket_path, PREAMBLE + struct.pack(">I", 2**31))
        assert good.status().pools["uv"].target == 0  # same connection, still fine


def test_request_errors_keep_the_connection(daemon: DaemonProcess) -> None:
    """Well-formed requests the daemon refuses get an error reply, not a close."""
    data = (
        PREAMBLE
        + frame(HANDSHAKE_POOL)
        + frame(b'{"type": "take", "env_type": "conda"}')
        + frame(b'{"type": "return", "env": {"venv_path": "/etc"}}')
        + frame(b'{"type": "ping"}')
    )
    hello, take, ret, pong = split_frames(exchange(daemon.socket_path, data))
    assert hello["ok"]
    assert take["type"] in ("error", "empty")
    if take["type"] == "error":
        assert take["code"] == "pool_disabled" and "conda" in take["message"]
    assert ret["type"] == "error" and ret["code"] == "invalid_env"
    assert pong["type"] == "pong"


# --- fuzzing -----------------------------------------------------------------------------

SAFE_TYPES = ["ping", "status", "get_daemon_info", "list_rooms", "take", "return", "nope", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
requests = st.fixed_dictionaries(
    {"type": st.sampled_from(SAFE_TYPES)},
    optional={
        "env_type": st.sampled_from(["uv", "conda", "x", 3]),
        "timeout_secs": st.just(0),
        "env": json_values,
        "extra": json_values,
    },
).map(lambda d: json.dumps(d).encode())
payloads = st.binary(max_size=64) | requests | json_values.map(lambda v: json.dumps(v).encode())
handshakes = st.sampled_from([HANDSHAKE_POOL, b'{"channel": "blob"}', b"{}"]) | payloads
length_lies = st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=16)).map(
    lambda t: struct.pack(">I", t[0]) + t[1]
)
opening = st.sampled_from([PREAMBLE, b"RUNT\x00", b"RUNT\x07", b"RUN", b""]) | st.binary(max_size=8)
inputs = (
    st.binary(max_size=256)
    | st.tuples(
        opening, handshakes.map(frame), st.lists(payloads.map(frame) | length_lies, max_size=3)
    ).map(lambda t: t[0] + t[1] + b"".join(t[2]))
    | st.tuples(st.lists(payloads.map(frame), max_size=3), length_lies).map(
        lambda t: PREAMBLE + frame(HANDSHAKE_POOL) + b"".join(t[0]) + t[1]
    )
)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=inputs)
def test_fuzz_random_frames(daemon: DaemonProcess, data: bytes) -> None:
    """Random bytes, random frames, lying lengths: each connection gets whole frames
    back (valid replies, request errors), a protocol error frame last if any, then a
    close."""
    frames = split_frames(exchange(daemon.socket_path, data))
    for f in frames:
        assert isinstance(f, dict)
        if f.get("type") == "error" or f.get("ok") is False:
            assert f["message"] and f["code"] != "internal", f
            if f.get("ok") is False:  # a protocol error: it closes the connection
                assert f is frames[-1]
        else:
            assert f.get("ok") is True or f.get("type") in (
                "pong",
                "status",
                "daemon_info",
                "rooms",
                "empty",
                "env",
                "ok",
            ), f
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_daemon_serves_after_fuzzing(daemon: DaemonProcess) -> None:
    assert_still_serving(daemon)
    with daemon.client() as client:
        assert client.daemon_info().pid == daemon.proc.pid  # type: ignore[union-attr]
    log = (daemon.cache_dir / "runtimed.log").read_text()
    assert "unexpected error" not in log and "Traceback" not in log
