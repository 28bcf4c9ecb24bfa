"""The gateway's error middleware: a document that went between a handler's read and its write
(Applications.mutate's LookupError, e.g. an application erased by an admin meanwhile) is 404, not 500; a
KeyError (a bug) stays a 500. The store is the real one, on the test database."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.http.middleware import error_handling, request_context
from services.gateway.store import Applications, Change
from shared.events import new_id


async def test_a_document_gone_before_the_write_is_404_and_a_key_error_stays_500(database: Any) -> None:
    applications = Applications(database, lambda: None)
    application_id = new_id()
    await applications.create({"_id": application_id, "state": "in_review"})

    async def decide(request: web.Request) -> web.Response:
        assert await applications.get(application_id) is not None  # the handler's read
        await database.db["applications"].delete_one({"_id": application_id})  # erased meanwhile
        await applications.mutate(application_id, lambda doc: Change(set={"state": "approved"}))
        return web.Response()

    async def bug(request: web.Request) -> web.Response:
        return web.Response(text={}["missing"])

    app = web.Application(middlewares=[request_context, error_handling])
    app.router.add_post("/decide", decide)
    app.router.add_post("/bug", bug)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.post("/decide")
        assert resp.status == 404 and (await resp.json())["code"] == "not_found"
        resp = await client.post("/bug")
        assert resp.status == 500 and (await resp.json())["code"] == "internal_error"
    finally:
        await client.close()
