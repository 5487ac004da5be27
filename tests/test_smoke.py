import pytest

from helpers import DaemonProcess

pytestmark = pytest.mark.daemon


def test_ping_reports_versions(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        pong = client.ping()
    assert pong.protocol_version == 1
    assert pong.daemon_version
