"""The trust store, names, look-alikes, the created-here marker and NotebookTrust's review,
in process; `runt trust` as a real command on a real store."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runtimed.daemon.envs.notebook_trust import NotebookTrust
from runtimed.daemon.envs.sources import NotebookFacts
from runtimed.daemon.trust.lookalikes import lookalike
from runtimed.daemon.trust.own_notebooks import NotebookKey
from runtimed.daemon.trust.package_names import (
    TrustKey,
    conda_dependencies,
    normalise_channel,
    pypi_dependency,
)
from runtimed.daemon.trust.trust_gate import UNTRUSTED, TrustGate
from runtimed.daemon.trust.trust_store import TrustStore
from runtimed.errors import RuntimedError


def uv_meta(*deps: str) -> dict[str, Any]:
    return {"runt": {"uv": {"dependencies": list(deps)}}}


@pytest.fixture
def trust(tmp_path: Path) -> NotebookTrust:
    config = tmp_path / "config"
    gate = TrustGate(TrustStore.in_config_dir(config), NotebookKey(config))
    return NotebookTrust(gate, lambda: "uv", lambda: ["conda-forge"])


def test_names_are_normalised_and_conda_channels_apart() -> None:
    assert pypi_dependency("Requests_Toolbelt[socks] >= 1.0", "x").key == TrustKey(
        "pypi", "requests-toolbelt"
    )
    url = pypi_dependency("foo @ https://e.com/foo.whl", "x")
    assert url.key.name == "foo @ https://e.com/foo.whl" and url.direct == "https://e.com/foo.whl"
    assert pypi_dependency("./libs/mine", "x").direct == "./libs/mine"
    both = conda_dependencies("NumPy >=1.26", ["conda-forge", "https://my.org/ch/"], "x")
    assert [d.key for d in both] == [
        TrustKey("conda", "numpy", "conda-forge"),
        TrustKey("conda", "numpy", "https://my.org/ch"),
    ]
    (one,) = conda_dependencies("bioconda::samtools", ["conda-forge"], "x")
    assert one.key == TrustKey("conda", "samtools", "bioconda")
    assert normalise_channel("https://conda.anaconda.org/conda-forge/") == "conda-forge"


def test_lookalikes_at_distance_one_and_two() -> None:
    assert lookalike("reqeusts") == "requests"  # transposition
    assert lookalike("numpyy") == "numpy"
    assert lookalike("python-dateutl") == "python-dateutil"
    assert lookalike("scikitlearn") == "scikit-learn"
    for fine in ("requests", "six", "my-internal-lib", "pandas", "sx"):
        assert lookalike(fine) is None, fine


def test_store_approve_list_revoke(tmp_path: Path) -> None:
    store = TrustStore.in_config_dir(tmp_path / "config")
    assert store.trusted([TrustKey("pypi", "six")]) == set() and store.list() == []
    keys = [TrustKey("pypi", "six"), TrustKey("conda", "numpy", "conda-forge")]
    assert store.approve(keys) == 2 and store.approve(keys) == 0
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.trusted([*keys, TrustKey("conda", "numpy", "other")]) == set(keys)
    assert [p.key for p in store.list()] == sorted(keys)
    assert store.revoke("SIX") == [TrustKey("pypi", "six")]
    assert store.trusted(keys) == {keys[1]}
    assert store.revoke("six") == []


def _approve(args: tuple[str, int]) -> int:
    path, worker = args
    store = TrustStore(Path(path))
    # Overlapping sets: every worker approves 0..59 shifted by its number.
    return store.approve(TrustKey("pypi", f"pkg-{(worker * 7 + i) % 100}") for i in range(60))


def test_concurrent_approvals_are_atomic(tmp_path: Path) -> None:
    path = tmp_path / "config" / "trusted-packages.sqlite"
    with ProcessPoolExecutor(6) as pool:
        added = list(pool.map(_approve, [(str(path), w) for w in range(12)]))
    names = {k.key.name for k in TrustStore(path).list()}
    expected = {f"pkg-{(w * 7 + i) % 100}" for w in range(12) for i in range(60)}
    assert names == expected
    assert sum(added) == len(expected), "each key counted new exactly once"


def test_created_here_marker(tmp_path: Path) -> None:
    key = NotebookKey(tmp_path / "config")
    runt = key.stamped({"runt": {"uv": {"dependencies": ["six"]}}})
    assert runt["uv"] == {"dependencies": ["six"]}
    assert key.created_here({"runt": runt})
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    other = NotebookKey(tmp_path / "other-config")
    assert not other.created_here({"runt": runt}), "another user's key"
    nonce, mac = runt["created_here"].split(".")
    forged = {"runt": {"created_here": f"{nonce}.{'0' * len(mac)}"}}
    assert not key.created_here(forged) and not key.created_here({"runt": "x"})


def test_review_asks_only_for_new_packages(trust: NotebookTrust) -> None:
    facts = NotebookFacts(uv_meta("six", "reqeusts"), None)
    review = trust.review(facts)
    assert review.source == "uv:inline"
    assert {r.dependency.key.name: bool(r.warnings) for r in review.pending} == {
        "six": False,
        "reqeusts": True,
    }
    with pytest.raises(RuntimedError) as info:
        trust.check("uv:inline", facts)
    assert info.value.code == UNTRUSTED and "six" in info.value.message
    assert len(trust.approve(facts).pending) == 2
    trust.check("uv:inline", facts)
    later = NotebookFacts(uv_meta("six", "reqeusts", "Packaging>=23", "ipykernel"), None)
    assert [r.dependency.key.name for r in trust.review(later).pending] == ["packaging"]


def test_prewarmed_and_created_here_need_nothing(trust: NotebookTrust, tmp_path: Path) -> None:
    assert trust.review(NotebookFacts({}, None)).pending == []
    key = NotebookKey(tmp_path / "config")
    mine = {"runt": {**key.stamped({}), "uv": {"dependencies": ["evil-pkg"]}}}
    review = trust.review(NotebookFacts(mine, None))
    assert review.pending == [] and "created here" in review.note


def test_project_files_the_user_keeps_are_trusted(trust: NotebookTrust, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname="p"\ndependencies=["evil-pkg"]\n')
    facts = NotebookFacts({}, str(project / "nb.ipynb"))
    review = trust.review(facts)
    assert review.source == "uv:pyproject" and review.pending == []
    assert "you keep" in review.note
    os.chmod(project / "pyproject.toml", 0o666)  # anyone could have written it
    review = trust.review(facts)
    assert [r.dependency.key.name for r in review.pending] == ["evil-pkg"]
    # Notebook metadata is never a project file: it wins and is asked about.
    metadata = NotebookFacts(uv_meta("other-pkg"), str(project / "nb.ipynb"))
    assert [r.dependency.key.name for r in trust.review(metadata).pending] == ["other-pkg"]


def test_pep723_block_is_not_trusted(trust: NotebookTrust) -> None:
    cell = '# /// script\n# dependencies = ["six", "numpyy"]\n# ///\nimport six\n'
    review = trust.review(NotebookFacts({}, None, cell))
    assert review.source == "uv:pep723"
    assert [(r.dependency.key.name, r.dependency.origin[:9]) for r in review.pending] == [
        ("six", "the first"),
        ("numpyy", "the first"),
    ]


def runt(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNTIMED_CONFIG_DIR": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "runtimed.cli.runt_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_runt_trust_review_yes_list_revoke(tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    metadata = uv_meta("six", "reqeusts", "foo @ https://example.com/foo.whl")
    notebook.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4,
                                    "nbformat_minor": 5}))  # fmt: skip
    config = tmp_path / "config"
    asked = runt(config, "trust", str(notebook))
    assert asked.returncode == 1 and "pass --yes" in asked.stderr
    assert "looks like the popular package 'requests'" in asked.stdout
    assert "direct URL" in asked.stdout
    assert not TrustStore.in_config_dir(config).list(), "nothing approved without a yes"
    explained = runt(config, "env", "explain", str(notebook))
    assert explained.returncode == 0 and "auto -> uv:inline" in explained.stdout
    assert "not yet approved" in explained.stdout
    approved = runt(config, "trust", str(notebook), "--yes")
    assert approved.returncode == 0 and "approved 3" in approved.stdout, approved.stderr
    listed = runt(config, "trust", "list")
    assert "six" in listed.stdout and "reqeusts" in listed.stdout
    assert "nothing to approve" in runt(config, "trust", str(notebook)).stdout
    revoked = runt(config, "trust", "revoke", "six")
    assert revoked.returncode == 0 and "revoked six" in revoked.stdout
    pending = json.loads(runt(config, "trust", str(notebook), "--json").stdout)
    assert [p["name"] for p in pending["untrusted"]] == ["six"]
