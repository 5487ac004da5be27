"""Waiting for a freshly launched kernel to answer, without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from queue import Empty
from typing import Any

from runtimed.daemon.kernels.errors import KernelStartError, describe_exit
from runtimed.daemon.kernels.execution import Message

RESEND_INTERVAL = 1.0
TICK = 0.05


async def wait_until_ready(
    client: Any,
    exit_code: Callable[[], Awaitable[int | None]],
    timeout: float,
    log_tail: Callable[[], str],
) -> Message:
    """Send kernel_info until the kernel replies on shell *and* IOPub is connected.

    Returns the ``kernel_info_reply``. Raises KernelStartError, with the kernel's output,
    when the process exits first or ``timeout`` passes. ``exit_code`` is None while the
    process lives.
    """
    deadline = time.monotonic() + timeout
    sent_at = 0.0
    replied = False
    reply: Message | None = None
    while True:
        now = time.monotonic()
        if not replied and now - sent_at >= RESEND_INTERVAL:
            client.kernel_info()
            sent_at = now
        if not replied:
            reply = await _shell_reply(client)
            replied = reply is not None
        if replied and await _iopub_connected(client):
            assert reply is not None
            return reply
        if replied:
            replied = False  # IOPub not subscribed yet: ask again so the kernel publishes
            sent_at = 0.0
        code = await exit_code()
        if code is not None:
            raise KernelStartError(f"the kernel process exited ({describe_exit(code)})", log_tail())
        if time.monotonic() > deadline:
            raise KernelStartError(f"no reply from the kernel in {timeout:g} s", log_tail())


async def _shell_reply(client: Any) -> Message | None:
    """A kernel_info_reply (to any of our requests) if one arrives within one tick."""
    try:
        msg: Message = await client.shell_channel.get_msg(timeout=TICK)
    except Empty:
        return None
    if msg.get("msg_type") == "kernel_info_reply":
        return msg
    return None


async def _iopub_connected(client: Any) -> bool:
    """Any IOPub message (status of our request, iopub_welcome) proves the subscription."""
    try:
        await client.iopub_channel.get_msg(timeout=TICK)
    except Empty:
        return False
    return True
