"""The settings document's schema: defaults, validation, dotted-key access."""

from __future__ import annotations

import copy
import re
from typing import Any

from runtimed.errors import RuntimedError

DEFAULTS: dict[str, Any] = {
    "default_runtime": "python",
    "default_python_env": "uv",
    "keep_alive_secs": 30.0,
    "output_blob_threshold": 1024,
    "blob_max_bytes": 256 * 1024 * 1024,
    "blob_gc_grace_secs": 3600.0,
    "uv": {"pool_size": 3, "default_packages": [], "python": None},
    "conda": {"pool_size": 3, "default_packages": [], "channels": ["conda-forge"]},
    "kernel_pool": {"size": 1, "gateway_size": 0},
    "gc": {
        "inline_env_max_age_days": 30.0,
        "inline_env_max_count": 20,
        "inline_env_budget_gb": 20.0,
        "room_grace_days": 7.0,
    },
    # Execution history (history.sqlite): pruned by age and by count, oldest first.
    "history": {"max_age_days": 90.0, "max_executions": 200_000},
    # The HTTP server (read at start): HOST:PORT (port 0: a free one) or "off"; origins
    # (scheme://host[:port]) whose pages may call it, besides its own.
    "http": {"listen": "127.0.0.1:0", "allowed_origins": []},
    # A Jupyter Kernel / Enterprise Gateway for `gateway:<kernelspec>` kernels
    # (docs/gateway.md); url null: none. token_file wins over token.
    "gateway": {
        "url": None,
        "token": None,
        "token_file": None,
        "headers": {},
        "request_timeout": 60.0,
        "validate_cert": True,
    },
}

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+/?$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*; ]*$")


def _pool_size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or not 0 <= v <= 64:
        raise ValueError("must be a whole number from 0 to 64")
    return int(v)


def _packages(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(p, str) and _PACKAGE.match(p) for p in v):
        raise ValueError('must be a list of package specs, like ["numpy", "pandas>=2"]')
    return list(v)


def _channels(v: Any) -> list[str]:
    if not isinstance(v, list) or not v or not all(isinstance(c, str) and c for c in v):
        raise ValueError("must be a non-empty list of channel names or URLs")
    return list(v)


def _choice(*options: str) -> Any:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)

    return check


def _seconds(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 7 * 86400:
        raise ValueError("must be a number of seconds from 0 to 604800")
    return float(v)


def _bytes(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 2**30:
        raise ValueError("must be a size in bytes")
    return int(v)


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("must be a number")
    return float(v)


def _days(v: Any) -> float:
    if _number(v) < 0:
        raise ValueError("must be a number of days >= 0")
    return float(v)


def _gigabytes(v: Any) -> float:
    if _number(v) <= 0:
        raise ValueError("must be a size in GB > 0")
    return float(v)


def _count(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < 0:
        raise ValueError("must be a whole number >= 0")
    return int(v)


def _optional_path(v: Any) -> str | None:
    if v is None or (isinstance(v, str) and v):
        return v  # type: ignore[no-any-return]
    raise ValueError("must be an interpreter path or null")


def _listen(v: Any) -> str:
    from runtimed.daemon.http.listen import parse_listen

    if not isinstance(v, str):
        raise ValueError('must be "HOST:PORT" or "off"')
    try:
        parse_listen(v)
    except RuntimedError as exc:
        raise ValueError('must be "HOST:PORT" (port 0: any free port) or "off"') from exc
    return v.strip()


def _origins(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(o, str) and _ORIGIN.match(o) for o in v):
        raise ValueError('must be a list of origins, like ["https://nb.example.com:8443"]')
    return [o.rstrip("/") for o in v]


def _gateway_url(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if not isinstance(v, str) or not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", v):
        raise ValueError('must be "http(s)://host:port[/base]" or null')
    return v.rstrip("/")


def _optional_text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v or None
    raise ValueError("must be a string or null")


def _headers(v: Any) -> dict[str, str]:
    ok = isinstance(v, dict) and all(
        isinstance(k, str) and re.match(r"^[A-Za-z0-9-]+$", k) and isinstance(x, str)
        for k, x in v.items()
    )
    if not ok:
        raise ValueError('must be a map of header names to strings, like {"X-User": "me"}')
    return dict(v)


def _timeout(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 3600:
        raise ValueError("must be a number of seconds > 0 and <= 3600")
    return float(v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


VALIDATORS: dict[str, Any] = {
    "default_runtime": _choice("python"),
    "default_python_env": _choice("uv", "conda"),
    "keep_alive_secs": _seconds,
    "output_blob_threshold": _bytes,
    "blob_max_bytes": _bytes,
    "blob_gc_grace_secs": _seconds,
    "uv.pool_size": _pool_size,
    "uv.default_packages": _packages,
    "uv.python": _optional_path,
    "conda.pool_size": _pool_size,
    "conda.default_packages": _packages,
    "conda.channels": _channels,
    "kernel_pool.size": _pool_size,
    "gc.inline_env_max_age_days": _days,
    "gc.inline_env_max_count": _count,
    "gc.inline_env_budget_gb": _gigabytes,
    "gc.room_grace_days": _days,
    "history.max_age_days": _days,
    "history.max_executions": _count,
    "http.listen": _listen,
    "http.allowed_origins": _origins,
    "kernel_pool.gateway_size": _pool_size,
    "gateway.url": _gateway_url,
    "gateway.token": _optional_text,
    "gateway.token_file": _optional_text,
    "gateway.headers": _headers,
    "gateway.request_timeout": _timeout,
    "gateway.validate_cert": _flag,
}


def validate_value(key: str, value: Any) -> Any:
    """The normalised value for ``key``, or RuntimedError naming the key and the rule."""
    check = VALIDATORS.get(key)
    if check is None:
        raise RuntimedError(
            f"unknown setting {key!r}; known: {', '.join(VALIDATORS)}", "unknown_setting"
        )
    try:
        return check(value)
    except ValueError as exc:
        raise RuntimedError(f"invalid value for {key}: {value!r} {exc}", "invalid_setting") from exc


def get_path(settings: dict[str, Any], key: str) -> Any:
    node: Any = settings
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise RuntimedError(f"unknown setting {key!r}", "unknown_setting")
        node = node[part]
    return node


def set_path(settings: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(settings)
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def normalize(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Defaults overlaid with every valid value of ``raw``; also the problems skipped."""
    settings = copy.deepcopy(DEFAULTS)
    problems = []
    for key in VALIDATORS:
        try:
            value = get_path(raw, key)
        except RuntimedError:
            continue
        try:
            settings = set_path(settings, key, validate_value(key, value))
        except RuntimedError as exc:
            problems.append(exc.message)
    return settings, problems


def parse_cli_value(text: str) -> Any:
    """`runt config set uv.pool_size 5`: JSON when it parses, else the plain string."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
