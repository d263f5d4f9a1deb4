"""The OpenAPI document: exactly the app's routes, examples valid against their schemas, and
the ingest schema's required fields matching the validator's."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from km.server.app import make_app
from km.server.auth import PUBLIC_PATHS
from km.server.openapi import document
from km.server.stores.base import EventStore
from km.server.validate import REQUIRED_FIELDS, validate_event
from tests.server.conftest import UNLIMITED, Api
from tests.server.schema_check import DOC, validate


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def doc_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in DOC["paths"].items() for method in ops}


@pytest.mark.asyncio
async def test_every_route_is_documented_and_nothing_else(store: EventStore) -> None:
    assert app_routes(make_app(store, UNLIMITED)) == doc_routes()


def test_public_routes_are_marked_public() -> None:
    for path, ops in DOC["paths"].items():
        for op in ops.values():
            assert (op.get("security") == []) == (path in PUBLIC_PATHS), path


def test_operations_have_ids_and_responses() -> None:
    ids = [op["operationId"] for ops in DOC["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert DOC["openapi"] == "3.1.0"


def _examples() -> list[tuple[str, dict[str, Any], Any]]:
    found = []
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            for name, example in (media or {}).get("examples", {}).items():
                found.append((f"{method} {path} request {name}", media["schema"], example["value"]))
            for status, response in op["responses"].items():
                media = response.get("content", {}).get("application/json", {})
                for name, example in media.get("examples", {}).items():
                    found.append(
                        (f"{method} {path} {status} {name}", media["schema"], example["value"])
                    )
    return found


@pytest.mark.parametrize(
    ("where", "schema", "example"), _examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_examples_match_their_schemas(where: str, schema: dict[str, Any], example: Any) -> None:
    validate(schema, example)


def test_example_event_is_valid_for_the_server_too() -> None:
    batch = _examples()[0][2]
    for event in batch["events"]:
        validate(DOC["components"]["schemas"]["IngestEvent"], event)
        assert not isinstance(validate_event(event), str)


def test_required_fields_match_the_validator() -> None:
    assert DOC["components"]["schemas"]["IngestEvent"]["required"] == list(REQUIRED_FIELDS)
    read = DOC["components"]["schemas"]["Event"]
    assert set(read["required"]) == set(read["properties"]) >= set(REQUIRED_FIELDS)


@pytest.mark.asyncio
async def test_served_document_is_the_dict(api: Api) -> None:
    status, body, resp = await api.get("/api/v1/openapi.json")
    assert status == 200 and resp.content_type == "application/json"
    assert body == document()
