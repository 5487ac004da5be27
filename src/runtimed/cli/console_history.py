"""The inputs `runt run` recalls (Up, Ctrl-R): this runtime's and the user's earlier
inputs, from the daemon's history (history.sqlite), newest first, each once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prompt_toolkit.history import History

from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from runtimed.protocol.runtimes import ExecutionEntry

#: Past executions read at start (a few hundred KB at most).
RECALLED = 2000


def recalled_inputs(entries: Iterable[ExecutionEntry], runtime_id: str | None) -> list[str]:
    """Sources to recall, newest first: this runtime's, then everyone else's; blank
    ones and repeats dropped."""
    own: list[str] = []
    other: list[str] = []
    for entry in entries:
        source = (entry.source or "").strip()
        if source:
            (own if runtime_id and entry.runtime_id == runtime_id else other).append(source)
    seen: set[str] = set()
    unique = []
    for source in own + other:
        if source not in seen:
            seen.add(source)
            unique.append(source)
    return unique


async def load_history(client: Any, runtime_id: str | None) -> KernelHistory:
    """The history of ``client`` (an AsyncDaemonClient); empty when the daemon has none
    to give (an older daemon, a broken store): recall is a convenience."""
    try:
        entries = await client.executions(limit=RECALLED)
    except RuntimedError:
        entries = []
    return KernelHistory(recalled_inputs(entries, runtime_id))


class KernelHistory(History):
    """In memory: what the daemon's history had at start, then this session's inputs
    (which the daemon records too, as executions)."""

    def __init__(self, newest_first: list[str]) -> None:
        super().__init__()
        self._past = newest_first

    def load_history_strings(self) -> Iterator[str]:
        yield from self._past

    def store_string(self, string: str) -> None:
        return None  # the daemon's history keeps every executed input
