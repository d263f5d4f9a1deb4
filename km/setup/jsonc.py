"""A JSONC parser that remembers where every value is (sans-IO).

MCP client configs are JSON, and VS Code's are JSONC: `//` and `/* */` comments and trailing
commas. `parse(text)` returns a tree whose nodes carry their `[start, end)` offsets in `text`,
so an editor can replace one value's span and leave every other byte as it was. Invalid input
raises `JsoncError` with the 1-based line and column of the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_DEPTH = 256  # deeper nesting is refused with JsoncError rather than a RecursionError
_PUNCTUATION = "{}[]:,"
_LITERALS = {"true": True, "false": False, "null": None}
_NUMBER_CHARS = frozenset("+-0123456789.eE")


class JsoncError(ValueError):
    """The text is not JSON (with comments and trailing commas)."""

    def __init__(self, message: str, text: str, offset: int) -> None:
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        self.offset = offset
        self.reason = message
        super().__init__(f"{message} at line {self.line}, column {self.column}")


@dataclass(frozen=True, slots=True)
class Scalar:
    start: int
    end: int
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    key_start: int
    key_end: int
    value: Node


@dataclass(frozen=True, slots=True)
class JsonObject:
    start: int
    end: int
    members: tuple[Member, ...]

    def get(self, key: str) -> Node | None:
        """The value of the last member named `key` (JSON's rule for duplicates), or None."""
        found = None
        for member in self.members:
            if member.key == key:
                found = member.value
        return found

    def member(self, key: str) -> Member | None:
        found = None
        for member in self.members:
            if member.key == key:
                found = member
        return found


@dataclass(frozen=True, slots=True)
class JsonArray:
    start: int
    end: int
    items: tuple[Node, ...]


Node = Scalar | JsonObject | JsonArray


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # one of _PUNCTUATION, "string", "number", "literal", "end"
    start: int
    end: int


def parse(text: str) -> Node | None:
    """The document's root value; None for a text with only whitespace and comments."""
    parser = _Parser(text)
    if parser.peek().kind == "end":
        return None
    root = parser.value(0)
    tail = parser.next()
    if tail.kind != "end":
        raise JsoncError("unexpected text after the document", text, tail.start)
    return root


def to_python(node: Node) -> object:
    """The plain Python value of a node (dicts, lists, scalars)."""
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, JsonArray):
        return [to_python(item) for item in node.items]
    return {member.key: to_python(member.value) for member in node.members}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 1 if text.startswith("\ufeff") else 0
        self._peeked: _Token | None = None

    def peek(self) -> _Token:
        if self._peeked is None:
            self._peeked = self._scan()
        return self._peeked

    def next(self) -> _Token:
        token = self.peek()
        self._peeked = None
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.next()
        if token.kind != kind:
            raise JsoncError(f"expected {what}", self.text, token.start)
        return token

    def value(self, depth: int) -> Node:
        token = self.next()
        if token.kind == "{":
            return self._object(token, depth + 1)
        if token.kind == "[":
            return self._array(token, depth + 1)
        if token.kind in ("string", "number", "literal"):
            return Scalar(token.start, token.end, self._scalar(token))
        raise JsoncError("expected a value", self.text, token.start)

    def _object(self, opening: _Token, depth: int) -> JsonObject:
        self._check_depth(opening, depth)
        members: list[Member] = []
        while True:
            token = self.next()
            if token.kind == "}":
                return JsonObject(opening.start, token.end, tuple(members))
            if token.kind != "string":
                raise JsoncError("expected a string key or '}'", self.text, token.start)
            key = self._scalar(token)
            assert isinstance(key, str)
            self.expect(":", "':' after the key")
            members.append(Member(key, token.start, token.end, self.value(depth)))
            token = self.next()
            if token.kind == "}":
                return JsonObject(opening.start, token.end, tuple(members))
            if token.kind != ",":
                raise JsoncError("expected ',' or '}'", self.text, token.start)

    def _array(self, opening: _Token, depth: int) -> JsonArray:
        self._check_depth(opening, depth)
        items: list[Node] = []
        while True:
            if self.peek().kind == "]":
                return JsonArray(opening.start, self.next().end, tuple(items))
            items.append(self.value(depth))
            token = self.next()
            if token.kind == "]":
                return JsonArray(opening.start, token.end, tuple(items))
            if token.kind != ",":
                raise JsoncError("expected ',' or ']'", self.text, token.start)

    def _check_depth(self, token: _Token, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise JsoncError(f"nested deeper than {MAX_DEPTH} levels", self.text, token.start)

    def _scalar(self, token: _Token) -> str | int | float | bool | None:
        raw = self.text[token.start : token.end]
        if token.kind == "literal":
            return _LITERALS[raw]
        try:
            value = json.loads(raw)
        except ValueError:
            what = "string" if token.kind == "string" else "number"
            raise JsoncError(f"invalid {what}", self.text, token.start) from None
        assert isinstance(value, str | int | float)
        return value

    def _scan(self) -> _Token:
        text, pos = self.text, self._skip_blank(self.pos)
        if pos >= len(text):
            self.pos = pos
            return _Token("end", pos, pos)
        ch = text[pos]
        if ch in _PUNCTUATION:
            end = pos + 1
            kind = ch
        elif ch == '"':
            end, kind = self._string_end(pos), "string"
        elif ch in _NUMBER_CHARS:
            end = pos
            while end < len(text) and text[end] in _NUMBER_CHARS:
                end += 1
            kind = "number"
        else:
            end = pos
            while end < len(text) and text[end].isalpha():
                end += 1
            if text[pos:end] not in _LITERALS:
                raise JsoncError("unexpected character", text, pos)
            kind = "literal"
        self.pos = end
        return _Token(kind, pos, end)

    def _string_end(self, start: int) -> int:
        text, pos = self.text, start + 1
        while pos < len(text):
            ch = text[pos]
            if ch == '"':
                return pos + 1
            if ch == "\\":
                pos += 2
                continue
            if ch == "\n":
                break
            pos += 1
        raise JsoncError("unterminated string", text, start)

    def _skip_blank(self, pos: int) -> int:
        text = self.text
        while pos < len(text):
            ch = text[pos]
            if ch in " \t\r\n":
                pos += 1
            elif text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline + 1
            elif text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                if close < 0:
                    raise JsoncError("unterminated comment", text, pos)
                pos = close + 2
            else:
                break
        return pos
