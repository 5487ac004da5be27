"""The web notebook's trust dialog (issue 28), on one real daemon: its REST endpoints
(``GET|POST /api/notebooks/{id}/trust``: the review with its warnings, approvals in the
user's trusted-packages.sqlite, a change asking only for new packages, bad requests) and
the dialog in Chromium (a look-alike name's warning, Approve -> the kernel runs the cell,
Cancel -> nothing approved or installed).

The packages install offline: ``reqeusts`` is a wheel made here and served to uv through
``UV_FIND_LINKS``, the other a local wheel path.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import pytest
from playwright.sync_api import Page, expect

import runtimed
from browser import WebDaemon, cell, web_fixtures
from helpers import wait_until
from local_wheels import make_wheel
from runtimed.daemon.trust.trust_store import TrustStore

pytestmark = pytest.mark.daemon

TYPO_WARNING = "looks like the popular package 'requests'"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = tmp_path_factory.mktemp("find-links")
    make_wheel(found, "reqeusts", "0.1", "OK = 'typo'\n")
    return found


def find_links(request: pytest.FixtureRequest) -> dict[str, str]:
    """The daemon's uv finds reqeusts in ``wheels``."""
    return {"UV_FIND_LINKS": str(request.getfixturevalue("wheels"))}


web, pages = web_fixtures("web-trust", "--uv-pool-size", "0", environ=find_links)


def store(web: WebDaemon) -> TrustStore:
    return TrustStore.in_config_dir(web.daemon.cache_dir / "config")


def notebook(path: Path, deps: list[str], *sources: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["runt"] = {"uv": {"dependencies": deps}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return str(path)


def rest(
    web: WebDaemon, method: str, path: str, body: Any = None, token: bool = True
) -> tuple[int, Any]:
    """A REST call with the daemon's token: (status, decoded JSON)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {web.token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(web.url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def trust_url(notebook_id: str) -> str:
    return f"/api/notebooks/{quote(notebook_id, safe='')}/trust"


# --- REST ------------------------------------------------------------------------------


def test_the_review_over_rest_and_approving_what_it_listed(web: WebDaemon, tmp_path: Path) -> None:
    local = str(tmp_path / "never-built-0.1-py3-none-any.whl")
    path = notebook(tmp_path / "rest.ipynb", ["pandsa>=1", local])
    status, opened = rest(web, "POST", "/api/notebooks", {"path": path})
    assert status == 200, opened
    url = trust_url(opened["notebook_id"])
    assert rest(web, "GET", url, token=False)[0] == 401

    status, review = rest(web, "GET", url)
    assert status == 200 and review["type"] == "trust_report", review
    assert review["env_source"] == "uv:inline" and review["approved"] == []
    by_name = {p["name"]: p for p in review["untrusted"]}
    assert set(by_name) == {"pandsa", local}
    typo = by_name["pandsa"]
    assert typo["spec"] == "pandsa>=1" and typo["origin"] == "metadata.runt.uv.dependencies"
    assert typo["label"] == "pandsa" and typo["ecosystem"] == "pypi"
    assert typo["warnings"] == ["the name looks like the popular package 'pandas': a typosquat?"]
    assert "local path" in by_name[local]["warnings"][0]

    # The kernel does not start, and says why.
    status, refused = rest(web, "POST", url.removesuffix("/trust") + "/restart")
    assert status == 400 and refused["error"]["code"] == "untrusted_dependencies", refused

    status, answer = rest(web, "POST", url, {"packages": ["pandsa"]})
    assert status == 200, answer
    assert [p["name"] for p in answer["approved"]] == ["pandsa"]
    assert [p["name"] for p in answer["untrusted"]] == [local]
    assert {p.key.name for p in store(web).list()} >= {"pandsa"}, "the store runt trust uses"

    # A later change asks only for the new package.
    with runtimed.Session.open(path, socket_path=web.daemon.socket) as session:
        session.set_metadata("runt", {"uv": {"dependencies": ["pandsa>=1", local, "six"]}})
        session.sync()
    status, review = rest(web, "GET", url)
    assert sorted(p["name"] for p in review["untrusted"]) == sorted([local, "six"])
    assert store(web).revoke("pandsa")


def test_bad_trust_requests_get_clear_errors(web: WebDaemon, tmp_path: Path) -> None:
    path = notebook(tmp_path / "bad.ipynb", ["six"])
    status, opened = rest(web, "POST", "/api/notebooks", {"path": path})
    url = trust_url(opened["notebook_id"])
    for body in [{}, {"packages": []}, {"packages": "six"}, {"packages": [""]},
                 {"packages": ["six"], "also": 1}]:  # fmt: skip
        status, answer = rest(web, "POST", url, body)
        assert status == 400 and answer["error"]["code"] == "invalid_request", (body, answer)
    assert rest(web, "GET", trust_url("a" * 2000))[0] == 400
    status, answer = rest(web, "GET", trust_url(str(tmp_path / "not-open.ipynb")))
    assert status == 404 and "not open" in answer["error"]["message"]
    # A label the review does not list approves nothing.
    status, answer = rest(web, "POST", url, {"packages": ["numpy"]})
    assert status == 200 and answer["approved"] == [] and answer["untrusted"][0]["name"] == "six"
    assert "six" not in {p.key.name for p in store(web).list()}
    status, document = rest(web, "GET", "/api/openapi.json")
    operations = document["paths"]["/api/notebooks/{id}/trust"]
    assert set(operations) == {"get", "post"}
    assert "TrustBody" in document["components"]["schemas"]


# --- the dialog ------------------------------------------------------------------------


def run_first_cell(page: Page) -> None:
    cell(page, 0).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")


def test_the_dialog_warns_and_approve_runs_the_cell(
    web: WebDaemon, wheels: Path, tmp_path: Path
) -> None:
    local = make_wheel(tmp_path / "local", "trustdemo-local", "0.1", "OK = 'local'\n")
    code = "import reqeusts, trustdemo_local\nprint(reqeusts.OK, trustdemo_local.OK)"
    path = notebook(tmp_path / "dialog.ipynb", ["reqeusts", str(local)], code)
    page = web.open_notebook(path)
    run_first_cell(page)
    dialog = page.locator("#trust-dialog")
    expect(dialog).to_be_visible(timeout=30_000)
    expect(dialog.locator(".runt-trust-package")).to_have_count(2)
    typo = dialog.locator('.runt-trust-package[data-name="reqeusts"]')
    expect(typo.locator(".runt-trust-warning")).to_contain_text(TYPO_WARNING)
    expect(typo).to_contain_text("PyPI")
    path_item = dialog.locator(f'.runt-trust-package[data-name="{local}"]')
    expect(path_item.locator(".runt-trust-warning")).to_contain_text("local path")

    dialog.locator('[data-command="trust-approve"]').click()
    expect(dialog).to_be_hidden()
    output = cell(page, 0).locator(".jp-OutputArea-output")
    expect(output.first).to_contain_text("typo local", timeout=180_000)
    approved = {p.key.name for p in store(web).list()}
    assert {"reqeusts", str(local)} <= approved


def test_cancel_approves_and_installs_nothing(web: WebDaemon, tmp_path: Path) -> None:
    local = make_wheel(tmp_path / "local", "trustdemo-cancelled", "0.1", "OK = 1\n")
    path = notebook(tmp_path / "cancel.ipynb", ["reqeusts", str(local)], "print('ran')")
    inline = web.daemon.cache_dir / "inline-envs"
    envs_before = set(inline.iterdir()) if inline.exists() else set()
    page = web.open_notebook(path)
    run_first_cell(page)
    dialog = page.locator("#trust-dialog")
    expect(dialog).to_be_visible(timeout=30_000)
    dialog.locator('[data-command="trust-cancel"]').click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#notice")).to_contain_text("nothing approved")
    expect(page.locator("#kernel-status")).to_have_text("dead")
    assert str(local) not in {p.key.name for p in store(web).list()}
    after = set(inline.iterdir()) if inline.exists() else set()
    assert after == envs_before, "no env was built"
    assert cell(page, 0).locator(".jp-OutputArea-output").count() == 0
    # Running again asks again, and so does a restart (refused at once over REST).
    run_first_cell(page)
    expect(dialog).to_be_visible(timeout=30_000)
    wait_until(lambda: dialog.locator(".runt-trust-package").count() >= 1, 10, what="the list")
    page.keyboard.press("Escape")  # Cancel
    expect(dialog).to_be_hidden()
    page.locator('[data-command="restart"]').click()
    expect(dialog).to_be_visible(timeout=30_000)
    dialog.locator('[data-command="trust-cancel"]').click()
    assert str(local) not in {p.key.name for p in store(web).list()}
