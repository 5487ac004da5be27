"""`runt gateway status`: is the configured Jupyter Kernel / Enterprise Gateway reachable,
and which kernelspecs does it offer (use them as ``gateway:<name>``)."""

from __future__ import annotations

from runtimed.cli.common import echo, fail, print_json, reporting_errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def status(socket: str | None, json: bool) -> None:
    """The gateway.* settings' gateway: reachability, answer time, remote kernelspecs."""
    import asyncio

    from runtimed.client.settings_client import SettingsClient

    with reporting_errors(), SettingsClient(socket) as client:
        settings = client.get_all()
    report = asyncio.run(_probe(settings))
    if json:
        print_json(report)
    else:
        _print(report)
    if not report["reachable"]:
        raise SystemExit(1)


async def _probe(settings: dict[str, Any]) -> dict[str, Any]:
    import time

    from runtimed.daemon.gateway.gateway_rest import GatewayRest
    from runtimed.daemon.gateway.gateway_settings import GatewayError, GatewaySettings
    from runtimed.documents.settings import get_path

    try:
        gateway = GatewaySettings.read(lambda key: get_path(settings, key))
    except GatewayError as exc:
        fail(exc.message)
    rest = GatewayRest(gateway)
    report: dict[str, Any] = {"url": gateway.url, "token": bool(gateway.token)}
    started = time.perf_counter()
    try:
        answer = await rest.kernelspecs()
    except GatewayError as exc:
        return {**report, "reachable": False, "error": exc.message}
    finally:
        await rest.close()
    specs = []
    for name, entry in sorted(answer["kernelspecs"].items()):
        spec = entry.get("spec") if isinstance(entry, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        specs.append(
            {
                "name": name,
                "language": spec.get("language"),
                "display_name": spec.get("display_name"),
                "env_source": f"gateway:{name}",
            }
        )
    return {
        **report,
        "reachable": True,
        "answer_ms": round((time.perf_counter() - started) * 1000, 1),
        "default": answer.get("default"),
        "kernelspecs": specs,
    }


def _print(report: dict[str, Any]) -> None:
    if not report["reachable"]:
        echo(f"gateway {report['url']}: unreachable")
        echo(f"error: {report['error']}", err=True)
        return
    echo(f"gateway {report['url']}: reachable ({report['answer_ms']} ms)")
    echo(f"token: {'set' if report['token'] else 'none'}")
    echo("kernelspecs (use as env_source):")
    for spec in report["kernelspecs"]:
        default = "  (default)" if spec["name"] == report["default"] else ""
        language = spec["language"] or "-"
        echo(f"  {spec['env_source']:<28} {language:<10} {spec['display_name']}{default}")
