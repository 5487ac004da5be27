from helpers import DaemonProcess


def test_ping_reports_versions(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        pong = client.ping()
    assert pong.protocol_version == 1
    assert pong.daemon_version
