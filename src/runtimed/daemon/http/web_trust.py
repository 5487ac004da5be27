"""The notebook page's trust dialog over REST (issue 28): ``GET /api/notebooks/{id}/trust``
lists the packages the notebook's env would install that the user has not approved, each
with its warnings; ``POST`` approves the ones the dialog showed.

Both are the room request ``trust`` (``RoomRequests``, ``notebook_trust.trust_report``):
the review list and its warnings are the ones ``runt trust``, ``Session.trust()`` and the
MCP tool give, and approvals go to the same ``trusted-packages.sqlite``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from runtimed.daemon.http.notebook_endpoints import NotebookEndpoints
from runtimed.daemon.http.openapi import Endpoint
from runtimed.daemon.http.rest_errors import read_body, reply
from runtimed.protocol.room import TrustReport, TrustRequest

#: A label is a normalised name (a direct reference: its URL or path), ``name (channel)``.
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class TrustBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/notebooks/{id}/trust``: approve these packages, by the ``label`` the
    review gave each (what the person saw: a package added since is not approved)."""

    packages: Annotated[list[Label], msgspec.Meta(min_length=1, max_length=1000)]


class WebTrust(NotebookEndpoints):
    """The review and the approval of a notebook's dependencies, as REST endpoints."""

    def endpoints(self) -> list[Endpoint]:
        return [
            self.endpoint(
                "GET",
                "trust",
                self.review,
                "the packages the notebook's env would install that are not approved yet, "
                "with warnings (look-alike names, direct URLs, local paths)",
                TrustReport,
            ),
            self.endpoint(
                "POST",
                "trust",
                self.approve,
                "approve packages the review listed (as `runt trust` does); then the kernel "
                "may start",
                TrustReport,
                body=TrustBody,
            ),
        ]

    async def review(self, request: web.Request) -> web.Response:
        return reply(await self._ask(request, TrustRequest(approve=False)))

    async def approve(self, request: web.Request) -> web.Response:
        body = await read_body(request, TrustBody)
        report = await self._ask(request, TrustRequest(approve=True, packages=body.packages))
        return reply(report)

    async def _ask(self, request: web.Request, ask: TrustRequest) -> TrustReport:
        parts, room = await self.open_room(self.notebook_id(request))
        report = await parts.channel.requests.handle(room, ask)
        assert isinstance(report, TrustReport)
        return report
