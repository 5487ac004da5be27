"""The `runt run` console in a real pseudo-terminal (pexpect) against a real daemon:
Tab completion from the kernel (with types), `obj?` help, input() and a hidden
getpass(), a cell waiting for input interrupted, Ctrl-R recalling an input of an
earlier runtime; and the pieces (help requests, completions, images) on their own."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from helpers import DaemonProcess
from runtimed.cli.console_completion import completions, help_request
from runtimed.cli.console_history import recalled_inputs
from runtimed.cli.console_images import graphics_protocol, inline_image, placeholder
from runtimed.protocol.runtimes import ExecutionEntry

BIN = Path(sys.executable).parent


def test_help_requests_are_told_from_code() -> None:
    assert help_request("len?") == ("len", 0)
    assert help_request("os.path.join??") == ("os.path.join", 1)
    assert help_request("?len") == ("len", 0)
    assert help_request("len") is None and help_request("x = 1?") is None
    assert help_request("a ? b") is None and help_request("?len?") is None


def test_completions_carry_the_kernels_types() -> None:
    reply = {
        "matches": ["OrderedDict"],
        "cursor_start": 12,
        "cursor_end": 15,
        "metadata": {
            "_jupyter_types_experimental": [
                {"start": 12, "end": 15, "text": "OrderedDict", "type": "class"}
            ]
        },
    }
    (only,) = completions(reply, 15)
    assert only.text == "OrderedDict" and only.start_position == -3
    assert only.display_meta_text == "class"


def test_recalled_inputs_put_this_runtimes_first_and_drop_repeats() -> None:
    def entry(source: str, runtime: str) -> ExecutionEntry:
        return ExecutionEntry("id", "e", "nb", "c", "done", runtime_id=runtime, source=source)

    entries = [entry("b", "other"), entry("a", "mine"), entry("b", "mine"), entry(" ", "x")]
    assert recalled_inputs(entries, "mine") == ["a", "b"]


def test_images_inline_only_where_the_terminal_says_so() -> None:
    assert graphics_protocol({"TERM": "xterm-kitty"}) == "kitty"
    assert graphics_protocol({"TERM_PROGRAM": "iTerm.app"}) == "iterm2"
    assert graphics_protocol({"TERM": "xterm-256color"}) is None
    assert graphics_protocol({"TERM": "xterm-kitty", "RUNT_IMAGES": "none"}) is None
    png = b"\x89PNG" + b"x" * 5000
    kitty = inline_image(png, "image/png", "kitty")
    assert kitty is not None and kitty.startswith("\x1b_Ga=T,f=100,m=1;") and "\x1b_Gm=0;" in kitty
    iterm = inline_image(png, "image/png", "iterm2")
    assert iterm is not None and iterm.startswith("\x1b]1337;File=inline=1;size=5004")
    assert inline_image(png, "image/png", None) is None
    line = placeholder("image/png", 5004, "http://127.0.0.1:1/blob/ab")
    assert line == "[image/png, 5,004 bytes]: http://127.0.0.1:1/blob/ab"


@pytest.fixture(scope="module")
def console_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("console") / "cache", ["--uv-pool-size", "2"])
    d.start()
    d.wait_pool("uv", 1)
    yield d
    d.stop()


def spawn(d: DaemonProcess) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"}
    return pexpect.spawn(
        str(BIN / "runt"), ["run", "--socket", str(d.socket_path)],
        env=env, encoding="utf-8", timeout=60, dimensions=(40, 120),
    )  # fmt: skip


def leave(child: pexpect.spawn) -> None:
    child.sendeof()
    child.expect("exited with no errors")
    child.expect(pexpect.EOF)


@pytest.mark.daemon
def test_completion_help_input_getpass_and_an_interrupted_prompt(
    console_daemon: DaemonProcess,
) -> None:
    child = spawn(console_daemon)
    try:
        child.expect(r"In \[1\]: ")
        child.sendline("import collections")
        child.expect(r"In \[2\]: ")
        child.send("collections.Ord\t")
        child.expect("eredDict")  # the one match is put in at once (drawn after "Ord")
        child.send("\r")
        child.expect(r"Out\[2\]: collections.OrderedDict")
        child.expect(r"In \[3\]: ")
        child.send("collections.de\t")  # several: the menu, with their types
        child.expect("defaultdict")
        child.expect("class")
        child.send("\x1b")  # close the menu
        child.send("\x15")  # and drop the line (Ctrl-U)
        child.send("\x7f" * 20)
        child.sendline("len?")
        child.expect("Return the number of items in a container")
        child.expect(r"In \[3\]: ")
        # The prompt's text is not in the typed line: the line's echo cannot match it.
        child.sendline("print('got', input('x' + '? '))")
        child.expect("x\\?")  # its trailing space is drawn as a cursor move
        child.sendline("hello")
        child.expect("got hello")
        child.expect(r"In \[4\]: ")
        child.sendline("import getpass; print(len(getpass.getpass('p' + 'w: ')))")
        child.expect("pw:")
        child.sendline("sesame7")
        child.expect(r"\D7\r\n")  # len('sesame7')
        assert "sesame7" not in (child.before or "")  # never echoed
        child.expect(r"In \[5\]: ")
        # The prompt's text is not in the typed line, so its echo cannot match it: the
        # interrupt comes while the cell waits in input(), not while it is queued.
        child.sendline("input('wa' + 'it? ')")
        child.expect("wait\\?")  # prompt_toolkit draws the trailing space as a cursor move
        child.sendintr()
        child.expect("KeyboardInterrupt")
        child.expect(r"In \[6\]: ")
        child.sendline("'still' + 'alive'")
        child.expect("'stillalive'")
        child.expect(r"In \[7\]: ")
        leave(child)
    finally:
        child.close(force=True)


@pytest.mark.daemon
def test_ctrl_r_finds_an_input_of_an_earlier_runtime(console_daemon: DaemonProcess) -> None:
    first = spawn(console_daemon)
    try:
        first.expect(r"In \[1\]: ")
        first.sendline("'recall' + '_me'")
        first.expect("'recall_me'")
        first.expect(r"In \[2\]: ")
        leave(first)
    finally:
        first.close(force=True)
    second = spawn(console_daemon)
    try:
        second.expect(r"In \[1\]: ")
        second.send("\x12")  # Ctrl-R: reverse search
        second.send("recall' +")
        second.expect("recall' \\+.*'_me'")  # the match, its found part highlighted
        second.send("\r")  # accept the match
        second.send("\r")  # and run it
        second.expect(r"Out\[1\]: 'recall_me'")
        second.expect(r"In \[2\]: ")
        leave(second)
    finally:
        second.close(force=True)
