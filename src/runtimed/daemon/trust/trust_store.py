"""TrustStore: the packages this user approved, in ``<config dir>/trusted-packages.sqlite``.

One row per ``TrustKey``. Every call opens its own connection (daemon threads, the CLI and
other daemons share the file), approvals are one ``BEGIN IMMEDIATE`` transaction of
``INSERT OR IGNORE``: concurrent approvals of overlapping sets all land, none is lost or
half-written. The file is 0600 in a 0700 directory.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from runtimed.daemon.trust.package_names import TrustKey
from runtimed.errors import RuntimedError
from runtimed.paths import ensure_private_dir

TRUST_FILE = "trusted-packages.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS packages (
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT NOT NULL DEFAULT '',
    approved_at REAL NOT NULL,
    PRIMARY KEY (ecosystem, name, channel)
) WITHOUT ROWID
"""


@dataclass(frozen=True)
class TrustedPackage:
    key: TrustKey
    approved_at: float


class TrustStore:
    """The allowlist of one user (one config dir)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_config_dir(cls, config_dir: Path) -> TrustStore:
        return cls(config_dir / TRUST_FILE)

    def trusted(self, keys: Iterable[TrustKey]) -> set[TrustKey]:
        """Which of ``keys`` are approved (no file yet: none)."""
        wanted = set(keys)
        if not wanted or not self.path.exists():
            return set()
        with self._connect() as db:
            rows = db.execute("SELECT ecosystem, name, channel FROM packages").fetchall()
        return wanted & {TrustKey(e, n, c) for e, n, c in rows}

    def approve(self, keys: Iterable[TrustKey]) -> int:
        """Approve ``keys`` in one transaction; returns how many were new."""
        rows = [(k.ecosystem, k.name, k.channel, time.time()) for k in set(keys)]
        if not rows:
            return 0
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO packages (ecosystem, name, channel, approved_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            db.execute("COMMIT")
            return db.total_changes - before

    def revoke(self, name: str) -> list[TrustKey]:
        """Forget every approval of ``name`` (any ecosystem and channel; PyPI names are
        matched normalised); returns what was removed."""
        from packaging.utils import canonicalize_name

        names = {name.strip(), name.strip().lower(), str(canonicalize_name(name.strip()))}
        if not self.path.exists():
            return []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(names))
            found = db.execute(
                f"SELECT ecosystem, name, channel FROM packages WHERE name IN ({marks})",
                tuple(names),
            ).fetchall()
            db.execute(f"DELETE FROM packages WHERE name IN ({marks})", tuple(names))
            db.execute("COMMIT")
        return sorted(TrustKey(e, n, c) for e, n, c in found)

    def list(self) -> list[TrustedPackage]:
        """Every approval, by ecosystem and name."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            rows = db.execute(
                "SELECT ecosystem, name, channel, approved_at FROM packages "
                "ORDER BY ecosystem, name, channel"
            ).fetchall()
        return [TrustedPackage(TrustKey(e, n, c), at) for e, n, c, at in rows]

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            ensure_private_dir(self.path.parent, tighten=False)
            if not self.path.exists():
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.close(fd)
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                db.execute("PRAGMA busy_timeout = 30000")
                db.execute(_SCHEMA)
                yield db
        except sqlite3.Error as exc:
            raise RuntimedError(
                f"cannot use the trust store {self.path}: {exc}", code="trust_store"
            ) from None
