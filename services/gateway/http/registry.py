"""Routes registered together with their OpenAPI description, so the document cannot drift from the code.

A route is declared once with its auth, query parameters, request and response models (pydantic);
`/api/v1/openapi.json` (and the console's document) gets the path, schemas, auth and error codes, and
aiohttp gets the handler wrapped so that what is declared is also enforced, before the handler runs:
- `auth`: an `Auth` (`http/auth.py`: `PUBLIC`, `STUDENT`, the console's operator roles) is run by the
  registry; a handler with a `who` parameter receives the caller. `auth=True` / `False` (the older
  form) only documents it: the handler authenticates itself.
- `query`: every declared numeric parameter must be a finite number in its declared range (400).
- `body`: a handler with a `body` parameter receives the declared model, parsed from a JSON body read
  within the size limit (`http/bodies.py`).
A test checks that every route the app serves is in its document.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from services.gateway.http.auth import Auth
from services.gateway.http.bodies import json_body
from services.gateway.http.query import check_query, query_schema
from services.gateway.http.statuses import STATUS_OF
from services.gateway.messages import ERROR_MESSAGES

#: What aiohttp calls.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: What a route declares: `(request)`, or `(request, *, who=..., body=...)` for what the registry hands over.
RouteHandler = Callable[..., Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=RouteHandler)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: RouteHandler
    summary: str
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    auth: bool | Auth
    errors: tuple[str, ...]
    multipart: dict[str, str] | None
    # A query parameter's type name ("string", "integer") or its whole JSON schema (enum, lengths).
    query: dict[str, str | dict[str, Any]] = field(default_factory=dict)
    binary: str | None = None
    # Other success statuses answered with the same body (e.g. 200 when a pending order is reused).
    also: tuple[int, ...] = ()
    # A caller that is not our client (WeChat Pay) gets its own error body instead of `Error`.
    error_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        takes = inspect.signature(self.handler).parameters
        if "who" in takes and not isinstance(self.auth, Auth):
            raise TypeError(f"{self.handler.__name__} takes `who`: declare auth=STUDENT, PUBLIC or a role")
        if "body" in takes and self.body is None:
            raise TypeError(f"{self.handler.__name__} takes `body`: declare body=<model>")

    @property
    def authenticated(self) -> bool:
        return self.auth.scheme is not None if isinstance(self.auth, Auth) else self.auth

    def auth_error_codes(self) -> tuple[str, ...]:
        if isinstance(self.auth, Auth):
            return self.auth.error_codes(self.method)
        return ("unauthenticated",) if self.auth else ()

    def serve(self) -> Handler:
        """The handler aiohttp calls: declared auth, query ranges and body enforced, then the route's own."""
        takes = inspect.signature(self.handler).parameters
        pass_who, pass_body = "who" in takes, "body" in takes
        auth = self.auth if isinstance(self.auth, Auth) else None
        query, model, handler = self.query, self.body, self.handler
        if auth is None and not query and not pass_body:
            return handler

        async def serve(request: web.Request) -> web.StreamResponse:
            extra: dict[str, Any] = {}
            if auth is not None:
                who = await auth.authenticate(request)
                if pass_who:
                    extra["who"] = who
            check_query(request, query)
            if pass_body and model is not None:
                extra["body"] = await json_body(request, model)
            return await handler(request, **extra)

        serve.__name__ = handler.__name__
        return serve


class Api:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: bool | Auth = True,
        errors: tuple[str, ...] = (),
        multipart: dict[str, str] | None = None,
        query: dict[str, str | dict[str, Any]] | None = None,
        binary: str | None = None,
        also: tuple[int, ...] = (),
        error_schema: dict[str, Any] | None = None,
    ) -> Callable[[H], H]:
        def register(handler: H) -> H:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    body,
                    response,
                    status,
                    auth,
                    errors,
                    multipart,
                    query or {},
                    binary,
                    also,
                    error_schema,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, endpoint.serve())

    def openapi(self) -> dict[str, Any]:
        schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
        paths: dict[str, dict[str, Any]] = {}
        for e in self.endpoints:
            operation: dict[str, Any] = {
                "summary": e.summary,
                "operationId": e.handler.__name__,
                "responses": {},
            }
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _path_params(e.path)
            ] + [
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": query_schema(kind),
                }
                for name, kind in e.query.items()
            ]
            if params:
                operation["parameters"] = params
            if e.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(e.body, schemas)}},
                }
            if e.multipart is not None:
                content = operation.setdefault("requestBody", {"required": True, "content": {}})["content"]
                content["multipart/form-data"] = {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string", "format": "binary"}
                            if kind == "binary"
                            else {"type": kind}
                            for name, kind in e.multipart.items()
                        },
                    }
                }
            if e.binary is not None:
                operation["responses"][str(e.status)] = {
                    "description": "OK",
                    "content": {e.binary: {"schema": {"type": "string", "format": "binary"}}},
                }
            elif e.response is not None:
                operation["responses"][str(e.status)] = {
                    "description": "OK",
                    "content": {"application/json": {"schema": _ref(e.response, schemas)}},
                }
            else:
                operation["responses"][str(e.status)] = {"description": "OK"}
            for status in e.also:
                operation["responses"][str(status)] = operation["responses"][str(e.status)]
            codes = set(e.errors) | {"internal_error", "invalid_request"}
            if e.body is not None or e.multipart is not None:
                # Every body is read within a size limit and a declared content type (http/bodies.py).
                codes |= {"unsupported_media_type", "payload_too_large"}
            if e.body is not None:
                codes.add("invalid_json")
            if e.authenticated:
                operation["security"] = [{"session": []}]
            codes |= set(e.auth_error_codes())
            for status in sorted({STATUS_OF.get(c, 400) for c in codes}):
                described = sorted(c for c in codes if STATUS_OF.get(c, 400) == status)
                schema = e.error_schema or {"$ref": "#/components/schemas/Error"}
                operation["responses"][str(status)] = {
                    "description": ", ".join(described),
                    "content": {"application/json": {"schema": schema}},
                }
            paths.setdefault(e.path, {})[e.method.lower()] = operation
        return {
            "openapi": "3.1.0",  # the schemas are pydantic's JSON Schema 2020-12, which 3.1 uses
            "info": {"title": "Graduation-photo collection: student API", "version": "1"},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {"session": {"type": "http", "scheme": "bearer"}},
            },
        }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "enum": sorted(ERROR_MESSAGES)},
        "message": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "details": {"type": "object"},
    },
}
