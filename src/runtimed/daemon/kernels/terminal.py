"""Terminal emulation for stream text: ``\\r`` rewrites the line, ``\\b`` deletes a character.

Pure and incremental: chunks are fed one at a time and the rendered text is available at
any point. ANSI escape sequences are kept intact and never split by ``\\b``.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|[\r\n\b]|[^\x1b\r\n\b]+|\x1b"
)


def _is_escape(token: str) -> bool:
    return token.startswith("\x1b")


class TerminalBuffer:
    """Text as a notebook front end shows it after ``\\r`` and ``\\b`` are applied.

    Semantics follow Jupyter front ends: ``\\r`` followed by anything but ``\\n`` clears the
    current line (a progress bar redraws it), ``\\r\\n`` is a newline, ``\\b`` deletes the
    last printable character of the current line. A trailing ``\\r`` is remembered, so the
    next chunk overwrites the line.
    """

    def __init__(self) -> None:
        self._done: list[str] = []
        self._done_chars = 0
        self._line: list[str] = []
        self._pending_cr = False
        self._cache: str | None = None

    def feed(self, text: str) -> None:
        """Apply one chunk of stream text."""
        self._cache = None
        if self._pending_cr or "\r" in text or "\b" in text or "\x1b" in text:
            for token in _TOKEN.findall(text):
                self._feed_token(token)
            return
        # Plain text (nearly all output): whole lines at C speed; the tokenizer costs
        # ~0.7 s of event loop per 100 MB.
        if text.endswith("\n"):  # the usual chunk: kept as it is, no copy
            lines = "".join(self._line) + text if self._line else text
            self._line.clear()
            self._done.append(lines)
            self._done_chars += len(lines)
            return
        head, newline, tail = text.rpartition("\n")
        if newline:
            lines = "".join(self._line) + head + newline
            self._done.append(lines)
            self._done_chars += len(lines)
            self._line.clear()
        if tail:
            self._line.append(tail)

    def _feed_token(self, token: str) -> None:
        if token == "\r":
            self._pending_cr = True
            return
        if self._pending_cr:
            self._pending_cr = False
            if token != "\n":
                self._line.clear()
        if token == "\n":
            self._line.append("\n")
            line = "".join(self._line)
            self._done.append(line)
            self._done_chars += len(line)
            self._line.clear()
        elif token == "\b":
            self._backspace()
        else:
            self._line.append(token)

    def _backspace(self) -> None:
        for i in range(len(self._line) - 1, -1, -1):
            token = self._line[i]
            if _is_escape(token):
                continue
            if len(token) > 1:
                self._line[i] = token[:-1]
            else:
                del self._line[i]
            return

    @property
    def completed_chars(self) -> int:
        """Characters in completed lines (which nothing can change any more)."""
        return self._done_chars

    def line_chars(self) -> int:
        return sum(len(t) for t in self._line)

    def take_completed(self) -> str:
        """Remove and return the completed lines; ``text`` keeps only the current line."""
        head = "".join(self._done)
        self._done = []
        self._done_chars = 0
        self._cache = None
        return head

    def take_line_head(self, keep: int) -> str:
        """Remove and return all but the last ``keep`` characters of the current line.

        For a line too long to keep live: a later ``\r`` or ``\b`` only reaches the
        characters kept.
        """
        line = "".join(self._line)
        if len(line) <= keep:
            return ""
        cut = len(line) - keep
        self._line = [line[cut:]]
        self._cache = None
        return line[:cut]

    @property
    def text(self) -> str:
        """The rendered text so far (a pending ``\\r`` is not shown)."""
        if self._cache is None:
            if len(self._done) > 1:
                self._done = ["".join(self._done)]
            if not self._line:  # no copy of a huge output just to read it
                self._cache = self._done[0] if self._done else ""
            else:
                self._cache = "".join(self._done) + "".join(self._line)
        return self._cache
