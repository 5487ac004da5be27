"""``/api/runtimes`` and ``/api/executions``: what `runt ps/start/kill/interrupt/restart`
and `runt history` do on the socket, over REST; and code run in a runtime, written as a
new cell of its room (as the REPL writes its inputs) so that any client can watch it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from runtimed.daemon.channels.runtimes import MAX_LIMIT
from runtimed.daemon.http.openapi import Endpoint, Param
from runtimed.daemon.http.rest_errors import query_int, query_seconds, read_body, reply
from runtimed.daemon.http.rest_execute import (
    MAX_WAIT_SECS,
    NotebookAccess,
    RoomHolds,
    run_cell,
)
from runtimed.daemon.http.rest_types import ExecuteBody, ExecutionResult, StartRuntimeBody
from runtimed.daemon.rooms.room_registry import validate_notebook_id
from runtimed.daemon.runtimes.registry import describe
from runtimed.documents.runtime import EXECUTION_STATUSES
from runtimed.errors import RuntimedError
from runtimed.protocol.runtimes import ExecutionReply, ExecutionsReply, RuntimeReply, RuntimesReply

WAIT = Param(
    "wait",
    f"seconds to wait for the end (0 < wait <= {MAX_WAIT_SECS:g}); without it, or past "
    "it, the answer is 202 with the execution's id",
    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT_SECS},
)


class RuntimeRoutes:
    """Runtimes and the execution history."""

    def __init__(self, notebooks: NotebookAccess, holds: RoomHolds) -> None:
        self.notebooks = notebooks
        self.holds = holds

    def endpoints(self) -> list[Endpoint]:
        statuses = {"type": "string", "enum": list(EXECUTION_STATUSES)}
        return [
            Endpoint("GET", "/api/runtimes", self.list_runtimes, "every runtime", RuntimesReply),
            Endpoint(
                "POST",
                "/api/runtimes",
                self.start_runtime,
                "start a kernel in a room of its own",
                RuntimeReply,
                body=StartRuntimeBody,
                status=201,
            ),
            Endpoint("GET", "/api/runtimes/{id}", self.get_runtime, "one runtime", RuntimeReply),
            Endpoint(
                "DELETE", "/api/runtimes/{id}", self.kill_runtime, "stop a runtime", RuntimeReply
            ),
            Endpoint(
                "POST",
                "/api/runtimes/{id}/interrupt",
                self.interrupt_runtime,
                "interrupt the running cell; queued ones are cancelled",
                RuntimeReply,
                conflicts=True,
            ),
            Endpoint(
                "POST",
                "/api/runtimes/{id}/restart",
                self.restart_runtime,
                "restart the kernel",
                RuntimeReply,
                conflicts=True,
            ),
            Endpoint(
                "POST",
                "/api/runtimes/{id}/execute",
                self.execute,
                "run code as a new cell of the runtime's room",
                ExecutionResult,
                body=ExecuteBody,
                query=(WAIT,),
                accepted=True,
                conflicts=True,
            ),
            Endpoint(
                "GET",
                "/api/executions",
                self.list_executions,
                "executions from the history, newest first",
                ExecutionsReply,
                query=(
                    Param("notebook", "a notebook id", {"type": "string"}),
                    Param("runtime", "a runtime id", {"type": "string"}),
                    Param("status", "an execution status", statuses),
                    Param("limit", "at most this many", {"type": "integer", "minimum": 1}),
                ),
            ),
            Endpoint(
                "GET",
                "/api/executions/{id}",
                self.get_execution,
                "one execution with its source and outputs (by ULID or execution id)",
                ExecutionReply,
            ),
        ]

    # --- runtimes ------------------------------------------------------------------------

    async def list_runtimes(self, request: web.Request) -> web.Response:
        return reply(RuntimesReply((await self.notebooks()).runtimes.list()))

    async def start_runtime(self, request: web.Request) -> web.Response:
        body = await read_body(request, StartRuntimeBody)
        if not body.kernel:
            raise RuntimedError("give a kernel name, like python3", "invalid_request")
        runtimes = (await self.notebooks()).runtimes
        started = await runtimes.start(body.kernel, body.env_source or "auto", body.cwd)
        return reply(RuntimeReply(started), status=201)

    async def get_runtime(self, request: web.Request) -> web.Response:
        runtimes = (await self.notebooks()).runtimes
        return reply(RuntimeReply(describe(runtimes.find(request.match_info["id"]))))

    async def kill_runtime(self, request: web.Request) -> web.Response:
        runtimes = (await self.notebooks()).runtimes
        room_kernel = runtimes.find(request.match_info["id"])
        await runtimes.kill(room_kernel.runtime_id)
        return reply(RuntimeReply(describe(room_kernel)))

    async def interrupt_runtime(self, request: web.Request) -> web.Response:
        runtimes = (await self.notebooks()).runtimes
        return reply(RuntimeReply(await runtimes.interrupt(request.match_info["id"])))

    async def restart_runtime(self, request: web.Request) -> web.Response:
        runtimes = (await self.notebooks()).runtimes
        return reply(RuntimeReply(await runtimes.restart(request.match_info["id"])))

    async def execute(self, request: web.Request) -> web.Response:
        wait = query_seconds(request, "wait", MAX_WAIT_SECS)
        body = await read_body(request, ExecuteBody)
        parts = await self.notebooks()
        room_kernel = parts.runtimes.find(request.match_info["id"])
        cell_id = room_kernel.room.nb.insert_cell(None, body.code)
        return await run_cell(parts.rooms, self.holds, room_kernel, cell_id, wait)

    # --- executions ----------------------------------------------------------------------

    async def list_executions(self, request: web.Request) -> web.Response:
        query = request.query
        limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
        notebook = query.get("notebook")
        if notebook is not None:
            validate_notebook_id(notebook)
        status = query.get("status")
        if status is not None and status not in EXECUTION_STATUSES:
            raise RuntimedError(
                f"status must be one of {', '.join(EXECUTION_STATUSES)}", "invalid_request"
            )
        history = (await self.notebooks()).history
        entries = await asyncio.to_thread(
            history.executions, notebook, query.get("runtime"), limit, False, status
        )
        return reply(ExecutionsReply(entries))

    async def get_execution(self, request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        history = (await self.notebooks()).history
        entry = await asyncio.to_thread(history.execution, ident)
        if entry is None:
            raise RuntimedError(f"no execution {ident!r} in the history", "not_found")
        return reply(ExecutionReply(entry))
