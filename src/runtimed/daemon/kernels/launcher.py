"""A kernel's entry point: ``ipykernel_launcher`` without the debugger's start-up cost.

Run by path with the env's interpreter (the env does not have runtimed installed), so it
uses the standard library and ipykernel only::

    <env python> launcher.py -f <connection file>

ipykernel imports debugpy while it starts (about 150 ms of a 400 ms kernel start) only to
offer the debug protocol, which no runtimed client speaks. While the kernel initialises,
debugpy is made unimportable, so ipykernel starts without a debugger; afterwards user code
imports debugpy as usual.
"""

import os
import sys


def main() -> None:
    # Running a script puts its directory first on sys.path; `python -m ipykernel_launcher`
    # puts the working directory (the notebook's) there instead: do as it does.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(
        os.path.abspath(__file__)
    ):
        sys.path[0] = os.getcwd()
    blocked = "debugpy" not in sys.modules
    if blocked:
        sys.modules["debugpy"] = None  # type: ignore[assignment]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize()  # type: ignore[no-untyped-call]
    if blocked and sys.modules.get("debugpy", 0) is None:
        del sys.modules["debugpy"]
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
