"""`runt trust NOTEBOOK [--yes]`, `runt trust list`, `runt trust revoke NAME` and
`runt env explain NOTEBOOK`.

These read the notebook file and the user's trust store
(``<config dir>/trusted-packages.sqlite``) directly: no daemon needed, and the daemon
reads the same store at every kernel start.
"""

from __future__ import annotations

import json as jsonlib
import os
import sys

from runtimed.cli.common import fail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtimed.daemon.envs.notebook_trust import NotebookTrust
    from runtimed.daemon.envs.sources import NotebookFacts


def echo(text: str = "") -> None:
    print(text)


def trust(args: list[str], yes: bool = False, env_source: str = "auto", json: bool = False) -> None:
    """Review a notebook's dependencies and approve them for installing.

    `runt trust NOTEBOOK` lists the packages the notebook's env would install that you
    have not approved (with warnings for names that look like popular packages and for
    direct URLs or local paths) and asks y/N; `--yes` approves without asking (scripts).
    `runt trust list` prints every approval; `runt trust revoke NAME` forgets one.
    """
    if args[0] == "list" and len(args) == 1:
        return _list(json)
    if args[0] == "revoke":
        if len(args) != 2:
            fail("usage: runt trust revoke NAME")
        return _revoke(args[1])
    if len(args) != 1:
        fail("usage: runt trust NOTEBOOK [--yes] | runt trust list | runt trust revoke NAME")
    _review(args[0], yes, env_source, json)


def _review(path: str, yes: bool, env_source: str, json: bool) -> None:
    from runtimed.daemon.envs.notebook_trust import trust_report
    from runtimed.errors import RuntimedError

    facts = _facts(path)
    notebook_trust = _notebook_trust()
    try:
        report = trust_report(notebook_trust, facts, False, None, env_source)
        if not report.untrusted:
            _say_nothing_pending(report.env_source, report.note, json)
            return
        if json and not yes:  # a listing for a program: nothing asked, nothing approved
            import msgspec

            echo(msgspec.json.encode(report).decode())
            raise SystemExit(1)
        if not json:
            _print_pending(report.env_source, report.untrusted)
        if not yes and not _confirm(f"Approve these {len(report.untrusted)} packages?"):
            fail("nothing approved", code=1)
        names = [p.label for p in report.untrusted]
        done = trust_report(notebook_trust, facts, True, names, env_source)
    except RuntimedError as exc:
        fail(exc.message)
    if json:
        import msgspec

        echo(msgspec.json.encode(done).decode())
    else:
        echo(f"approved {len(done.approved)} package(s); the kernel may start now")


def _say_nothing_pending(source: str, note: str, json: bool) -> None:
    if json:
        echo(jsonlib.dumps({"env_source": source, "untrusted": [], "approved": [], "note": note}))
    else:
        echo(f"nothing to approve ({source}: {note})")


def _print_pending(source: str, pending: list[Any]) -> None:
    echo(f"env source {source}; not yet trusted:")
    for package in pending:
        where = f" from {package.channel}" if package.channel else ""
        echo(f"  {package.spec}{where}   ({package.ecosystem}, in {package.origin})")
        for warning in package.warnings:
            echo(f"    WARNING: {warning}")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        fail("not a terminal: pass --yes to approve without asking")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def _list(json: bool) -> None:
    from runtimed.daemon.trust.trust_store import TrustStore
    from runtimed.paths import default_config_dir

    approvals = TrustStore.in_config_dir(default_config_dir()).list()
    if json:
        rows = [
            {"ecosystem": a.key.ecosystem, "name": a.key.name, "channel": a.key.channel,
             "approved_at": a.approved_at}
            for a in approvals
        ]  # fmt: skip
        echo(jsonlib.dumps(rows))
        return
    if not approvals:
        echo("no approved packages")
    for approval in approvals:
        echo(f"{approval.key.ecosystem:6} {approval.key.label()}")


def _revoke(name: str) -> None:
    from runtimed.daemon.trust.trust_store import TrustStore
    from runtimed.paths import default_config_dir

    removed = TrustStore.in_config_dir(default_config_dir()).revoke(name)
    if not removed:
        fail(f"{name!r} is not approved (see `runt trust list`)")
    echo(f"revoked {', '.join(k.label() for k in removed)}")


def explain(notebook: str, json: bool = False) -> None:
    """Which env source `auto` picks for a notebook, every rung it considered and why,
    and what of it needs your approval."""
    from runtimed.daemon.envs.sources import choose
    from runtimed.errors import RuntimedError

    facts = _facts(notebook)
    notebook_trust = _notebook_trust()
    try:
        choice = choose(facts, notebook_trust.default_python_env())
        review = notebook_trust.review(facts, choice.source)
    except RuntimedError as exc:
        fail(exc.message)
    if json:
        steps = [
            {"source": s.source, "matched": s.matched, "reason": s.reason} for s in choice.steps
        ]
        pending = [r.dependency.key.label() for r in review.pending]
        echo(jsonlib.dumps({"env_source": choice.source, "steps": steps, "untrusted": pending,
                         "note": review.note}))  # fmt: skip
        return
    echo(f"auto -> {choice.source}")
    winner = next(i for i, s in enumerate(choice.steps) if s.matched)
    for i, step in enumerate(choice.steps):
        mark = "wins" if i == winner else ("no" if not step.matched else "also")
        echo(f"  {i + 1}. {step.source:16} {mark:4}  {step.reason}")
    if review.pending:
        names = ", ".join(r.dependency.key.label() for r in review.pending)
        echo(f"trust: not yet approved: {names}; run `runt trust {notebook}`")
    else:
        echo(f"trust: ok ({review.note})")


def _facts(path: str) -> NotebookFacts:
    from runtimed.daemon.envs.sources import NotebookFacts

    full = os.path.abspath(path)
    try:
        with open(full, encoding="utf-8") as f:
            notebook = jsonlib.load(f)
    except (OSError, UnicodeDecodeError, jsonlib.JSONDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
    if not isinstance(notebook, dict):
        fail(f"{path} is not a notebook")
    return NotebookFacts.of_nbformat(notebook, full)


def _notebook_trust() -> NotebookTrust:
    """The trust of this user's config dir, with the settings the daemon would use."""
    from runtimed.daemon.envs.notebook_trust import NotebookTrust
    from runtimed.daemon.trust.own_notebooks import NotebookKey
    from runtimed.daemon.trust.trust_gate import TrustGate
    from runtimed.daemon.trust.trust_store import TrustStore
    from runtimed.paths import default_config_dir

    config_dir = default_config_dir()
    settings = _settings(config_dir / "settings.json")
    conda = settings.get("conda") if isinstance(settings.get("conda"), dict) else {}
    channels = conda.get("channels") if isinstance(conda, dict) else None
    default = settings.get("default_python_env")
    gate = TrustGate(TrustStore.in_config_dir(config_dir), NotebookKey(config_dir))
    return NotebookTrust(
        gate,
        lambda: default if default in ("uv", "conda") else "uv",
        lambda: list(channels) if isinstance(channels, list) else ["conda-forge"],
    )


def _settings(path: Any) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = jsonlib.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
