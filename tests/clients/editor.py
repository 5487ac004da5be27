"""A client process for the room tests: connects, waits for a start signal, edits, reports.

usage: editor.py SOCKET NOTEBOOK_ID GO_FILE MODE ARG...
Prints the final cells as JSON after the room has settled.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import runtimed


def wait_for(path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("start signal never came")
        time.sleep(0.005)


def main() -> None:
    socket, notebook_id, go, mode, *args = sys.argv[1:]
    name = args[0] if args else "x"
    with runtimed.Session(notebook_id, socket_path=socket) as s:
        print("ready", flush=True)
        wait_for(go)
        rng = random.Random(name)
        if mode == "type":  # type characters at random positions of one shared cell
            cell_id, count = args[1], int(args[2])
            for i in range(count):
                text = s.get_cell(cell_id).source
                s.insert_source(cell_id, rng.randint(0, len(text)), f"{name}{i % 10}")
        elif mode == "churn":  # create, delete and move cells, racing the others
            for i in range(int(args[1])):
                ids = [c.id for c in s.get_cells()]
                action = rng.choice(["create", "create", "delete", "move"])
                try:
                    if action == "create" or not ids:
                        s.create_cell(f"{name}-{i}", index=rng.randint(0, len(ids)))
                    elif action == "delete":
                        s.delete_cell(rng.choice(ids))
                    else:
                        s.move_cell(rng.choice(ids), rng.randint(0, len(ids) - 1))
                except runtimed.RuntimedError as exc:  # raced with a delete: fine
                    if "not found" not in str(exc):
                        raise
        s.sync()
        print("done", flush=True)
        wait_for(go + ".finish")
        s.sync()
        cells = [{"id": c.id, "source": c.source} for c in s.get_cells()]
        print(json.dumps(cells), flush=True)


if __name__ == "__main__":
    main()
