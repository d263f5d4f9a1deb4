"""What a request acts on: the `tool` field of an event. Sans-IO.

    tools/call                                   -> params.name (the tool)
    prompts/get                                  -> params.name (the prompt)
    resources/read, resources/subscribe,
    resources/unsubscribe                        -> params.uri
    completion/complete                          -> "ref/prompt:NAME" or "ref/resource:URI"
                                                    (from params.ref)
    anything else, or a name/uri that is not a   -> None
    non-empty string

A response or error gets its request's target through the correlator (the shell copies it);
this module only reads requests.
"""

from __future__ import annotations

from collections.abc import Mapping

_BY_NAME = frozenset(("tools/call", "prompts/get"))
_BY_URI = frozenset(("resources/read", "resources/subscribe", "resources/unsubscribe"))
COMPLETE = "completion/complete"
TARGETED = _BY_NAME | _BY_URI | {COMPLETE}  # the methods `target_of` can name a target for

MAX_TARGET_CHARS = 1024  # a target longer than this is cut (a column value, not a payload)


def target_of(method: str | None, params: object) -> str | None:
    """The tool, prompt, resource URI or completion ref a request with `params` acts on."""
    if method is None or not isinstance(params, Mapping):
        return None
    if method in _BY_NAME:
        return _text(params.get("name"))
    if method in _BY_URI:
        return _text(params.get("uri"))
    if method == COMPLETE:
        ref = params.get("ref")
        if not isinstance(ref, Mapping):
            return None
        kind = ref.get("type")
        if kind == "ref/prompt":
            name = _text(ref.get("name"))
            return None if name is None else _cut(f"ref/prompt:{name}")
        if kind == "ref/resource":
            uri = _text(ref.get("uri"))
            return None if uri is None else _cut(f"ref/resource:{uri}")
    return None


def _text(value: object) -> str | None:
    if type(value) is not str or not value:
        return None
    return _cut(value)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TARGET_CHARS else text[:MAX_TARGET_CHARS]
