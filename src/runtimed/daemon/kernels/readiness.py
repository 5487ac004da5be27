"""Waiting for a freshly launched kernel to answer, without fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from runtimed.daemon.kernels.errors import KernelStartError, describe_exit
from runtimed.daemon.kernels.execution import Message

RESEND_INTERVAL = 1.0
TICK = 0.05


async def wait_until_ready(
    request_info: Callable[[], asyncio.Future[Message]],
    iopub_seen: asyncio.Event,
    exit_code: Callable[[], Awaitable[int | None]],
    timeout: float,
    log_tail: Callable[[], str],
) -> Message:
    """Ask for kernel_info until the kernel replies on shell *and* IOPub is connected.

    ``request_info()`` sends a kernel_info_request and returns a future for its reply;
    ``iopub_seen`` is set by any IOPub message (the status of our request, or
    iopub_welcome), which proves the subscription. A kernel answers a request it got
    before IOPub was subscribed without IOPub seeing it, so the request is repeated
    until both hold. Returns the ``kernel_info_reply``; raises KernelStartError, with the
    kernel's output, when the process exits first or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    replies: list[asyncio.Future[Message]] = []
    sent_at = 0.0
    try:
        while True:
            now = time.monotonic()
            if now - sent_at >= RESEND_INTERVAL:
                replies.append(request_info())
                sent_at = now
            done, _ = await asyncio.wait(replies, timeout=TICK)
            answered = [f for f in done if not f.cancelled() and f.exception() is None]
            if answered:
                if iopub_seen.is_set():
                    return answered[0].result()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(iopub_seen.wait(), TICK)
                if iopub_seen.is_set():
                    return answered[0].result()
                replies = [f for f in replies if not f.done()]
                sent_at = 0.0  # ask again: this time IOPub will hear the kernel
            code = await exit_code()
            if code is not None:
                raise KernelStartError(
                    f"the kernel process exited ({describe_exit(code)})", log_tail()
                )
            if time.monotonic() > deadline:
                raise KernelStartError(f"no reply from the kernel in {timeout:g} s", log_tail())
    finally:
        for future in replies:
            future.cancel()
