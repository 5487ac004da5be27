"""Each blocking client and its asyncio twin expose the same public methods, with the
same parameters (names, kinds, defaults): they differ only in how bytes move."""

from __future__ import annotations

import inspect

import pytest

from runtimed.client.async_session import AsyncSession
from runtimed.client.blobs import AsyncBlobClient, BlobClient
from runtimed.client.daemon_client import AsyncDaemonClient, DaemonClient
from runtimed.client.session import Session
from runtimed.client.settings_client import AsyncSettingsClient, SettingsClient

PAIRS = [
    (DaemonClient, AsyncDaemonClient),
    (SettingsClient, AsyncSettingsClient),
    (BlobClient, AsyncBlobClient),
    (Session, AsyncSession),
]
CONTEXT = {"__enter__", "__exit__", "__aenter__", "__aexit__"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in CONTEXT
    }


def shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_twins_have_the_same_methods(sync: type, async_: type) -> None:
    sync_methods, async_methods = public_methods(sync), public_methods(async_)
    assert sorted(sync_methods) == sorted(async_methods)
    for name, sig in sync_methods.items():
        assert shape(sig) == shape(async_methods[name]), name
    assert shape(inspect.signature(sync.__init__)) == shape(inspect.signature(async_.__init__))


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_async_twins_are_coroutines_and_sync_ones_are_not(sync: type, async_: type) -> None:
    for name in public_methods(sync):
        assert not inspect.iscoroutinefunction(getattr(sync, name)), name
        # Session-only helpers that only read the replica may be plain on both sides.
        if inspect.iscoroutinefunction(getattr(async_, name)):
            continue
        assert name in PLAIN_ON_BOTH, f"{async_.__name__}.{name} should be a coroutine"


PLAIN_ON_BOTH = {"add_listener", "remove_listener", "open"}


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_properties_match(sync: type, async_: type) -> None:
    def props(cls: type) -> set[str]:
        members = inspect.getmembers(cls)
        return {n for n, m in members if isinstance(m, property) and not n.startswith("_")}

    assert props(sync) == props(async_)
