"""In process: the HTTP token file, its rotation, the session cookie and login codes."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from runtimed.daemon.http import tokens as tokens_module
from runtimed.daemon.http.listen import HttpListen, listen_from, parse_listen
from runtimed.daemon.http.tokens import (
    HttpTokens,
    mint_login_code,
    read_token,
    token_file,
    write_new_token,
)
from runtimed.errors import RuntimedError


def test_first_start_writes_a_private_256_bit_token(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    tokens = HttpTokens.load_or_create(path)
    token = read_token(path)
    assert token is not None and len(token) == 64 and int(token, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.check(token)
    # The next start keeps it.
    assert HttpTokens.load_or_create(path).check(token)


def test_check_refuses_anything_else(tmp_path: Path) -> None:
    tokens = HttpTokens.load_or_create(token_file(tmp_path))
    token = read_token(token_file(tmp_path))
    assert token is not None
    for candidate in ("", token[:-1], token + "0", token.upper(), "x" * 64):
        assert not tokens.check(candidate)


def test_a_rotated_file_is_picked_up_without_restart(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    tokens = HttpTokens.load_or_create(path)
    old = read_token(path)
    cookie = tokens.new_cookie()
    new = write_new_token(path)
    assert old is not None and not tokens.check(old), "the old token is revoked at once"
    assert tokens.check(new)
    assert not tokens.check_cookie(cookie), "a rotation voids the cookies of the old token"


def test_a_damaged_token_file_is_replaced(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    path.write_text("not a token\n")
    HttpTokens.load_or_create(path)
    assert read_token(path) is not None


def test_cookies_are_checked(tmp_path: Path) -> None:
    tokens = HttpTokens.load_or_create(token_file(tmp_path))
    cookie = tokens.new_cookie()
    assert tokens.check_cookie(cookie)
    nonce, _, mac = cookie.partition(".")
    for forged in ("", nonce, f"{nonce}.", f"{nonce}.{'0' * len(mac)}", f"x{nonce}.{mac}"):
        assert not tokens.check_cookie(forged)


def test_a_login_code_works_once(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    tokens = HttpTokens.load_or_create(path)
    token = read_token(path)
    assert token is not None
    code = mint_login_code(token)
    assert tokens.redeem_login_code(code)
    assert not tokens.redeem_login_code(code)


def test_expired_forged_or_long_lived_codes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = token_file(tmp_path)
    tokens = HttpTokens.load_or_create(path)
    token = read_token(path)
    assert token is not None
    expired = mint_login_code(token, ttl_secs=-1)
    forged = mint_login_code("0" * 64)
    too_long = mint_login_code(token, ttl_secs=3600)
    for code in (expired, forged, too_long, "", "1.2", "a.b.c"):
        assert not tokens.redeem_login_code(code)
    code = mint_login_code(token)
    later = time.time() + tokens_module.LOGIN_CODE_TTL_SECS + 2
    monkeypatch.setattr(tokens_module.time, "time", lambda: later)
    assert not tokens.redeem_login_code(code)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("off") is None
    for bad in ("", "8080", "host:", "host:99999", ":80", "host:x"):
        with pytest.raises(RuntimedError):
            parse_listen(bad)


def test_non_loopback_needs_tls_or_an_explicit_opt_out(tmp_path: Path) -> None:
    assert listen_from("localhost:0", None, None, False) == HttpListen("localhost", 0)
    assert listen_from("off", None, None, False) is None
    with pytest.raises(RuntimedError, match="without TLS") as info:
        listen_from("0.0.0.0:0", None, None, False)
    assert info.value.code == "invalid_listen"
    assert listen_from("0.0.0.0:0", None, None, True) is not None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    with pytest.raises(RuntimedError, match="no such TLS file"):
        listen_from("10.0.0.1:443", str(cert), str(key), False)
    cert.write_text("x")
    key.write_text("x")
    with pytest.raises(RuntimedError, match="go together"):
        listen_from("10.0.0.1:443", str(cert), None, False)
    listen = listen_from("10.0.0.1:443", str(cert), str(key), False)
    assert listen is not None and listen.scheme == "https" and not listen.loopback


def test_the_http_settings_are_validated() -> None:
    from runtimed.documents.settings import DEFAULTS, validate_value

    assert DEFAULTS["http"] == {"listen": "127.0.0.1:0", "allowed_origins": []}
    assert validate_value("http.listen", " [::1]:8765 ") == "[::1]:8765"
    assert validate_value("http.listen", "off") == "off"
    assert validate_value("http.allowed_origins", ["https://nb.example.com/"]) == [
        "https://nb.example.com"
    ]
    for key, bad in (
        ("http.listen", "8765"),
        ("http.listen", 8765),
        ("http.allowed_origins", "https://nb.example.com"),
        ("http.allowed_origins", ["nb.example.com"]),
        ("http.allowed_origins", ["https://nb.example.com/path"]),
    ):
        with pytest.raises(RuntimedError) as info:
            validate_value(key, bad)
        assert info.value.code == "invalid_setting"
