"""The child process that runs an agent's regular expression, so that a pattern that
backtracks for ever (``(a|a)*$``) costs the MCP server only this process, which it kills
at the deadline.

Python's ``re`` cannot be interrupted from another thread, hence a process. Run as a
script (``python -I -S pattern_worker.py``): it imports only the standard library.
Requests on stdin and replies on stdout are a 4-byte big-endian length, then UTF-8 JSON
(lone surrogates pass). A request is ``{"pattern", "flags", "source", "keep", "limit"}``;
the reply ``{"spans": [[start, end], ...], "count": n}`` has the first ``keep`` spans and
counts at most ``limit`` matches, or it is ``{"error": "invalid" | "memory", "message"}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import sys
from typing import Any, BinaryIO

#: Address space of this process: a pattern that needs more fails with "memory".
MEMORY_LIMIT = 1 << 30
HEADER = struct.Struct(">I")


def limit_memory(limit: int = MEMORY_LIMIT) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: the deadline holds
        pass


def yield_cpu() -> None:
    """Run below the server and the daemon: a pattern that burns a core until its
    deadline takes it from nobody else who needs it."""
    with contextlib.suppress(AttributeError, OSError):  # no nice() on Windows
        os.nice(10)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """Compile and run one request's pattern."""
    try:
        regex = re.compile(request["pattern"], int(request["flags"]))
        keep, limit = int(request["keep"]), int(request["limit"])
        spans: list[tuple[int, int]] = []
        count = 0
        for match in regex.finditer(request["source"]):
            count += 1
            if len(spans) < keep:
                spans.append(match.span())
            if count >= limit:
                break
    except MemoryError:
        return {"error": "memory", "message": "out of memory"}
    except Exception as exc:  # re.error, OverflowError, RecursionError, ...
        return {"error": "invalid", "message": str(exc)}
    return {"spans": spans, "count": count}


def encode(value: dict[str, Any]) -> bytes:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> Any:
    return json.loads(body.decode("utf-8", "surrogatepass"))


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until stdin ends (the server closed it or exited)."""
    while True:
        header = stdin.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        (size,) = HEADER.unpack(header)
        body = stdin.read(size)
        if len(body) < size:
            return
        stdout.write(encode(answer(decode(body))))
        stdout.flush()


if __name__ == "__main__":
    limit_memory()
    yield_cpu()
    serve(sys.stdin.buffer, sys.stdout.buffer)
