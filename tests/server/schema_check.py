"""Checks a JSON value against a schema of km.server.openapi (jsonschema, Draft 2020-12 as
OpenAPI 3.1 uses): used on the document's own examples and on live responses."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from km.server.openapi import document

DOC = document()


def validate(schema: dict[str, Any], instance: Any) -> None:
    """Raise jsonschema.ValidationError unless `instance` matches. `$ref`s resolve inside DOC."""
    root = {**schema, "components": DOC["components"]}
    Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        instance
    )


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    operation = DOC["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """The response is documented for this operation and status, and matches its schema."""
    validate(response_schema(method, path, status), body)
