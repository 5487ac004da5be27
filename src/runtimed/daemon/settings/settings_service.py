"""Settings: validated, persisted to settings.json in the config dir, synced to clients.

The daemon owns the truth. Clients change settings with a `set` request (or by writing
the shared doc; invalid writes are reverted). Effective settings = defaults <- file <-
command-line overrides for this run; changes made while running are written to the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from runtimed.documents.settings import get_path, normalize, set_path, validate_value
from runtimed.errors import RuntimedError
from runtimed.files import atomic_write

if TYPE_CHECKING:
    import pycrdt
    from pycrdt import Doc, Map


log = logging.getLogger(__name__)

SettingsListener = Callable[[dict[str, Any], dict[str, Any]], None]
T = TypeVar("T")


class SettingValue(Generic[T]):
    """One setting as its reader sees it: the current value at each call (settings
    change while the daemon runs), converted to the type the reader wants."""

    def __init__(self, settings: SettingsService, key: str, convert: Callable[[Any], T]) -> None:
        self.settings = settings
        self.key = key
        self.convert = convert

    def __call__(self) -> T:
        return self.convert(self.settings.get(self.key))

    def __repr__(self) -> str:
        return f"SettingValue({self.key!r})"


class SettingsService:
    """The effective settings, their file, and the shared settings document."""

    def __init__(self, config_dir: Path, overrides: dict[str, Any]) -> None:
        self.file = config_dir / "settings.json"
        self.file_values = self._read_file()
        self.overrides = overrides
        self.effective = self._compute()
        self._doc: Doc[Any] | None = None
        self._listeners: list[SettingsListener] = []
        self._doc_listeners: list[Callable[[bytes], None]] = []

    @property
    def doc(self) -> Doc[Any]:
        """The shared settings document, made on first use (pycrdt loads lazily, which
        keeps daemon start fast)."""
        if self._doc is None:
            from pycrdt import Doc

            self._doc = Doc()
            self._write_doc(self.effective)
            self._doc.observe(self._on_update)
        return self._doc

    @property
    def map(self) -> Map[Any]:
        from pycrdt import Map

        settings: Map[Any] = self.doc.get("settings", type=Map)
        return settings

    def _write_doc(self, values: dict[str, Any]) -> None:
        if self._doc is None:
            return
        settings = self.map
        with self._doc.transaction():
            for key, value in values.items():
                if settings.get(key) != value:
                    settings[key] = value

    def _read_file(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.file, exc)
            return {}
        return raw if isinstance(raw, dict) else {}

    def _compute(self) -> dict[str, Any]:
        merged = dict(self.file_values)
        for key, value in self.overrides.items():
            merged = set_path(merged, key, value)
        settings, problems = normalize(merged)
        for problem in problems:
            log.warning("settings: %s (using the default)", problem)
        return settings

    def on_change(self, listener: SettingsListener) -> None:
        """Call ``listener(old, new)`` after every effective change."""
        self._listeners.append(listener)

    def get(self, key: str) -> Any:
        return get_path(self.effective, key)

    def value(self, key: str, convert: Callable[[Any], T]) -> SettingValue[T]:
        """A reader of ``key`` for a part that needs only that setting."""
        get_path(self.effective, key)  # an unknown key fails now, not at first use
        return SettingValue(self, key, convert)

    def set(self, key: str, value: Any) -> Any:
        """Validate, apply, persist and sync one setting; returns the stored value."""
        value = validate_value(key, value)
        self.file_values = set_path(self.file_values, key, value)
        self.overrides.pop(key, None)
        self._persist()
        self._apply(self._compute())
        return value

    def _persist(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(self.file_values, indent=2, sort_keys=True).encode()
        atomic_write(self.file, data, sync=False)

    def _apply(self, new: dict[str, Any]) -> None:
        old, self.effective = self.effective, new
        self._write_doc(new)
        if old != new:
            for listener in self._listeners:
                listener(old, new)

    # --- the shared document ----------------------------------------------------------

    def on_doc_update(self, listener: Callable[[bytes], None]) -> None:
        """Call ``listener(update)`` for every change of the settings document."""
        self._doc_listeners.append(listener)

    def _on_update(self, event: pycrdt.TransactionEvent) -> None:
        for listener in list(self._doc_listeners):
            listener(event.update)

    def accept_doc_edits(self) -> list[str]:
        """A client wrote the doc directly: keep valid values, revert the rest; returns
        why each rejected value was rejected."""
        current = {key: _plain(self.map.get(key)) for key in list(self.map.keys())}
        proposed = {k: v for k, v in current.items() if self.effective.get(k) != v}
        errors = []
        for top, value in proposed.items():
            for key, val in _flatten(top, value).items():
                try:
                    self.file_values = set_path(self.file_values, key, validate_value(key, val))
                except RuntimedError as exc:
                    errors.append(exc.message)
        if proposed and not errors:
            self._persist()
        self._apply(self._compute())  # also rewrites rejected values back
        return errors


def _plain(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: value}
