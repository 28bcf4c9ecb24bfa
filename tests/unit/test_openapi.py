"""The OpenAPI document is generated from the registered routes, so it cannot drift from the code."""

from __future__ import annotations

from services.gateway.app import API, build_app
from services.gateway.config import GatewaySettings


def test_every_api_route_is_documented_and_every_documented_route_exists():
    app, _runtime = build_app(GatewaySettings(environment="test"))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/")
        and route.method != "HEAD"
        and route.resource.canonical != "/api/v1/openapi.json"
    }
    document = API.openapi()
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    assert len(documented) >= 12


def test_operations_declare_auth_responses_and_error_schema():
    document = API.openapi()
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            assert op["summary"], (method, path)
            assert "500" in op["responses"] and "400" in op["responses"], (method, path)
            for response in op["responses"].values():
                for content in response.get("content", {}).values():
                    ref = content["schema"].get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[1] in schemas, ref
    login = document["paths"]["/api/v1/login"]["post"]
    assert "security" not in login  # the only way in
    status = document["paths"]["/api/v1/application"]["get"]
    assert status["security"] == [{"session": []}] and "401" in status["responses"]


def test_the_console_has_its_own_document_covering_every_console_route():
    from services.gateway.console.wiring import console_openapi

    app, _runtime = build_app(GatewaySettings(environment="test"))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/console/api/v1/")
        and route.method != "HEAD"
        and route.resource.canonical != "/console/api/v1/openapi.json"
    }
    document = console_openapi()
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert served == documented and len(documented) >= 8
    assert document["components"]["securitySchemes"]["session"]["in"] == "cookie"
    assert "security" not in document["paths"]["/console/api/v1/login"]["post"]
    decision = document["paths"]["/console/api/v1/reviews/{application_id}/decision"]["post"]
    assert {"401", "403", "404", "409"} <= set(decision["responses"])
    assert not set(API.openapi()["paths"]) & set(document["paths"])  # two separate documents
