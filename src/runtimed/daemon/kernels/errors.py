"""Errors of the kernel layer; all are RuntimedErrors with a message a person can act on."""

from __future__ import annotations

from runtimed.errors import RuntimedError


class KernelError(RuntimedError):
    """Base class of kernel errors."""


class UnsupportedLanguageError(KernelError):
    """The notebook asks for a kernel language runtimed cannot launch."""

    def __init__(self, language: str) -> None:
        super().__init__(
            f"unknown kernel language {language!r}: runtimed runs python kernels; "
            "change the notebook's kernelspec/language_info to python",
            code="unsupported_language",
        )
        self.language = language


class KernelStartError(KernelError):
    """The kernel process did not come up; ``stderr`` holds the tail of its output."""

    def __init__(self, reason: str, stderr: str = "") -> None:
        detail = f"\n--- kernel output ---\n{stderr.rstrip()}" if stderr.strip() else ""
        super().__init__(f"kernel failed to start: {reason}{detail}", code="kernel_start_failed")
        self.reason = reason
        self.stderr = stderr


class KernelNotRunningError(KernelError):
    """A request needs a running kernel and there is none."""

    def __init__(self, lifecycle: str) -> None:
        hint = "restart it" if lifecycle == "dead" else "start it"
        super().__init__(f"the kernel is {lifecycle}; {hint} first", code="kernel_not_running")
        self.lifecycle = lifecycle


class KernelDiedError(KernelError):
    """The kernel process exited while a request was in flight."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(
            f"the kernel died ({describe_exit(exit_code)}); restart the kernel to continue",
            code="kernel_died",
        )
        self.exit_code = exit_code


class ExecutionAbortedError(KernelError):
    """The request was cut short on purpose: the kernel was restarted or shut down."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"execution aborted: {reason}", code="execution_aborted")
        self.reason = reason


def describe_exit(exit_code: int | None) -> str:
    """``exit code 1`` / ``killed by SIGKILL`` / ``exit status unknown``."""
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"
