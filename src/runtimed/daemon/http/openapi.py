"""The REST API described once: each ``Endpoint`` is both an aiohttp route and an
operation of the OpenAPI 3.1 document at ``/api/openapi.json`` (schemas from the msgspec
types, ``msgspec.json.schema_components``), so the two cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from runtimed.daemon.http.http_errors import JSON, ErrorReplyBody
from runtimed.daemon.http.rest_errors import Handler, answers_errors

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
_ERRORS = {
    400: "bad request: malformed JSON, invalid parameters or body",
    401: "no valid token (Authorization: Bearer, or the login cookie)",
    403: "not this client's to do (another client's execution)",
    404: "no such runtime, notebook, cell or execution",
    409: "not possible in the current state (no kernel, file changed on disk, ...)",
    413: "the request body is too large",
}


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """One operation: its route, and what the document says of it."""

    method: str
    path: str
    #: None: served elsewhere (the daemon's own routes), described here.
    handler: Handler | None
    summary: str
    reply: type | None
    body: type | None = None
    query: tuple[Param, ...] = ()
    #: The status of success (201: something was made).
    status: int = 200
    #: 202: the reply is ``reply`` too, for work still going on.
    accepted: bool = False
    #: May answer 409 (the state forbids it: no kernel, file changed on disk, ...).
    conflicts: bool = False
    #: May answer 403 (another client's: ``not_your_execution``).
    forbids: bool = False
    #: Needs no token.
    public: bool = False
    #: The operationId (default: the handler's name).
    name: str | None = None
    #: Answers bytes of any media type (a blob), not JSON.
    binary: bool = False

    def route(self) -> web.RouteDef:
        """The aiohttp route; the handler's ``RuntimedError``s become JSON errors."""
        if self.handler is None:
            raise ValueError(f"{self.method} {self.path} is served elsewhere")
        return web.route(self.method, self.path, answers_errors(self.handler))

    @property
    def operation_id(self) -> str:
        if self.name is not None:
            return self.name
        return self.handler.__name__ if self.handler is not None else self.path

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


def openapi_document(endpoints: Iterable[Endpoint], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``."""
    endpoints = list(endpoints)
    types = {t for e in endpoints for t in (e.reply, e.body) if t is not None}
    ordered = sorted(types, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components([*ordered, ErrorReplyBody], ref_template=_REF)
    ref_of = dict(zip(ordered, refs, strict=False))
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = _PATH_PARAM.sub(r"{\1}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint, ref_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "runtimed",
            "version": version,
            "description": "Runtimes, executions and notebooks of a runtimed daemon. Every "
            "request needs the daemon's token (Authorization: Bearer). Notebook ids in "
            "paths are URL-encoded (a file's id is its absolute path).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(endpoint: Endpoint, ref_of: dict[type, dict[str, Any]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in endpoint.path_params
    ]
    parameters += [
        {"name": p.name, "in": "query", "description": p.description, "schema": p.schema}
        for p in endpoint.query
    ]
    responses: dict[str, Any] = {}
    ok = ref_of[endpoint.reply] if endpoint.reply is not None else {"type": "object"}
    responses[str(endpoint.status)] = _content("OK" if endpoint.status == 200 else "made", ok)
    if endpoint.binary:
        responses["200"] = {"description": "the content", "content": {"*/*": {}}}
    if endpoint.accepted:
        responses["202"] = _content("still queued or running", ok)
    error = {"$ref": _REF.format(name=ErrorReplyBody.__name__)}
    for status in _error_statuses(endpoint):
        responses[str(status)] = _content(_ERRORS[status], error)
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "responses": responses,
    }
    if endpoint.public:
        operation["security"] = []
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {"required": False, **_content("", ref_of[endpoint.body])}
        del operation["requestBody"]["description"]
    return operation


def _error_statuses(endpoint: Endpoint) -> list[int]:
    statuses = [] if endpoint.public else [401]
    if endpoint.body is not None or endpoint.query or endpoint.path_params:
        statuses.append(400)
    if endpoint.path_params:
        statuses.append(404)
    if endpoint.forbids:
        statuses.append(403)
    if endpoint.conflicts:
        statuses.append(409)
    if endpoint.body is not None:
        statuses.append(413)
    return sorted(statuses)


def _content(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}
