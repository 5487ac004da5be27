"""Whole-process time of the fast CLI commands next to `uv --version` (issue 29).

    python bench/cli_speed.py            # 15 rounds
    python bench/cli_speed.py --smoke    # 3 rounds, for CI
    python bench/cli_speed.py --rounds 30

Each round runs `uv --version` and then every command once, as a user would (the
installed entry points, the default socket found from RUNTIMED_CACHE_DIR), so all see the
same machine, along with `python -c 'import re'` (the interpreter's start: the floor of
any Python CLI). Prints the median of each (ms), its ratio to uv's, what it costs over
the floor, and the verdict: < 50 ms and within 6x of uv.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import bench_daemon, verdict

BIN = Path(sys.executable).parent
COMMANDS = [
    ["runt", "ps"],
    ["runt", "pool", "ping"],
    ["runt", "pool", "status"],
    ["runt", "rooms"],
    ["runt", "history"],
    ["runtimed", "status"],
]
TARGET_MS, TARGET_RATIO = 50.0, 6.0
#: The interpreter's own start with what every console script imports (re): the floor.
FLOOR = "python -c 'import re'"


def uv_binary() -> str:
    import uv

    return str(uv.find_uv_bin())


#: CPU time (user + system, ms) of each run, by command: unlike wall time it barely
#: moves with the machine's load, so it tells a slow command from a busy machine.
cpu: dict[str, list[float]] = {}


def timed(argv: list[str], env: dict[str, str], name: str = "") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode().strip()}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu.setdefault(name, []).append(used * 1000)
    return elapsed * 1000


def compile_bytecode() -> None:
    """What `pip install` does for a wheel: .pyc files of the package. A checkout run with
    PYTHONDONTWRITEBYTECODE=1 (or an editable install) would compile every module of a
    command on each run instead, about half of its time."""
    import compileall

    import runtimed

    compileall.compile_dir(Path(runtimed.__file__).parent, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--rounds", type=int, default=15)
    o = parser.parse_args()
    rounds = 3 if o.smoke else max(o.rounds, 7)
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="runtimed-cli-speed-") as tmp:
        d = bench_daemon(Path(tmp) / "cache", "--uv-pool-size", "0")
        d.start()
        env = {**os.environ, "RUNTIMED_CACHE_DIR": str(d.cache_dir)}
        env.pop("RUNTIMED_URL", None)
        try:
            uv = uv_binary()
            times: dict[str, list[float]] = {"uv --version": [], FLOOR: []}
            for command in COMMANDS:
                timed([str(BIN / command[0]), *command[1:]], env)  # warm the page cache
            for _ in range(rounds):
                times["uv --version"].append(timed([uv, "--version"], env, "uv --version"))
                times[FLOOR].append(timed([sys.executable, "-c", "import re"], env, FLOOR))
                for command in COMMANDS:
                    argv = [str(BIN / command[0]), *command[1:]]
                    name = " ".join(command)
                    times.setdefault(name, []).append(timed(argv, env, name))
        finally:
            d.stop()
    base = statistics.median(times["uv --version"])
    print(f"whole process, median of {rounds} rounds (interleaved)")
    print(f"  {'':<22} {'wall':>7}     {'ratio':>8}            CPU (user+sys)")

    def cpu_ms(name: str) -> str:
        return f"{statistics.median(cpu[name]):5.1f} ms"

    print(f"  {'uv --version':<22} {base:7.1f} ms  {'':>8}            {cpu_ms('uv --version')}")
    missed = False
    floor = statistics.median(times[FLOOR])
    print(
        f"  {FLOOR:<22} {floor:7.1f} ms  {floor / base:5.1f}x uv   floor  {cpu_ms(FLOOR)}"
        "  (Python's own start)"
    )
    for name, samples in times.items():
        if name in ("uv --version", FLOOR):
            continue
        median = statistics.median(samples)
        ok = median < TARGET_MS and median < TARGET_RATIO * base
        missed |= not ok
        print(
            f"  {name:<22} {median:7.1f} ms  {median / base:5.1f}x uv   {verdict(ok):<6} "
            f"{cpu_ms(name)}"
        )
    print(f"target: < {TARGET_MS:.0f} ms and < {TARGET_RATIO:.0f}x uv --version")
    if missed and not o.smoke:
        print("(a loaded machine inflates Python's start more than uv's: compare on a quiet one)")


if __name__ == "__main__":
    main()
