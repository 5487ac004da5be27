"""SettingsService in process: defaults <- settings.json <- overrides, validation,
persistence, change listeners, and the shared document (valid edits kept, others
reverted)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from runtimed.daemon.settings.settings_service import SettingsService
from runtimed.documents.settings import DEFAULTS
from runtimed.errors import RuntimedError


def write_settings(config_dir: Path, values: dict[str, Any]) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "settings.json").write_text(json.dumps(values))


def test_effective_is_defaults_then_file_then_overrides(tmp_path: Path) -> None:
    write_settings(tmp_path, {"uv": {"pool_size": 5}, "keep_alive_secs": 12})
    service = SettingsService(tmp_path, {"uv.pool_size": 1})
    assert service.get("uv.pool_size") == 1  # the command line wins for this run
    assert service.get("keep_alive_secs") == 12
    assert service.get("conda.pool_size") == DEFAULTS["conda"]["pool_size"]


def test_an_unreadable_file_gives_the_defaults_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "settings.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        service = SettingsService(tmp_path, {})
    assert service.get("uv.pool_size") == DEFAULTS["uv"]["pool_size"]
    assert "ignoring unreadable" in caplog.text


def test_set_validates_persists_and_tells_listeners(tmp_path: Path) -> None:
    service = SettingsService(tmp_path, {"uv.pool_size": 1})
    changes: list[tuple[Any, Any]] = []
    service.on_change(lambda old, new: changes.append((old["uv"], new["uv"])))
    assert service.set("uv.pool_size", 4) == 4
    assert service.get("uv.pool_size") == 4  # the override is gone: the user chose anew
    assert json.loads((tmp_path / "settings.json").read_text())["uv"]["pool_size"] == 4
    assert [(old["pool_size"], new["pool_size"]) for old, new in changes] == [(1, 4)]
    with pytest.raises(RuntimedError) as bad:
        service.set("uv.pool_size", -1)
    assert bad.value.code == "invalid_setting" and "uv.pool_size" in bad.value.message
    with pytest.raises(RuntimedError) as unknown:
        service.set("uv.nope", 1)
    assert unknown.value.code == "unknown_setting"
    assert service.get("uv.pool_size") == 4 and len(changes) == 1


def test_a_new_service_reads_what_the_last_one_saved(tmp_path: Path) -> None:
    SettingsService(tmp_path, {}).set("keep_alive_secs", 99)
    assert SettingsService(tmp_path, {}).get("keep_alive_secs") == 99


def replica_of(service: SettingsService) -> Doc[Any]:
    """A client's replica, kept in step with the service's document both ways."""
    replica: Doc[Any] = Doc()
    replica.apply_update(service.doc.get_update())
    service.on_doc_update(replica.apply_update)
    return replica


def test_doc_edits_are_kept_when_valid_and_reverted_when_not(tmp_path: Path) -> None:
    service = SettingsService(tmp_path, {})
    replica = replica_of(service)
    settings: Map[Any] = replica.get("settings", type=Map)
    assert settings["keep_alive_secs"] == service.get("keep_alive_secs")

    settings["keep_alive_secs"] = 45.0
    service.doc.apply_update(replica.get_update(service.doc.get_state()))
    assert service.accept_doc_edits() == []
    assert service.get("keep_alive_secs") == 45
    assert json.loads((tmp_path / "settings.json").read_text())["keep_alive_secs"] == 45

    settings["keep_alive_secs"] = "soon"
    service.doc.apply_update(replica.get_update(service.doc.get_state()))
    errors = service.accept_doc_edits()
    assert len(errors) == 1 and "keep_alive_secs" in errors[0]
    assert service.get("keep_alive_secs") == 45
    assert settings["keep_alive_secs"] == 45  # the revert reached the replica
