"""What tokens cost: a price table per model (USD per million input and output tokens), the
default model, and the override the config file's `[prices]` table gives. Sans-IO, pure.

Which tokens are which: what the model reads is input (a server's tool list, every tool
result, prompt and resource contents); what it writes is output (a call's arguments). So a
`tools/call` request's tokens cost the output price, its result's the input price.

Prices are the vendors' published list prices for standard API use (no batch, cache or
long-context rates) as of PRICES_DATE. They change: override them in config.toml:

    model = "claude-sonnet-4-5"          # or KM_MODEL
    [prices]
    claude-sonnet-4-5 = [3.0, 15.0]      # USD per million input tokens, per million output
    my-local-model = [0, 0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from km.errors import UsageError

PRICES_DATE = "2025-11-30"
DEFAULT_MODEL = "claude-sonnet-4-5"  # the model most MCP clients (Claude Desktop, Claude Code) use
MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    input_per_m: float  # USD per million input tokens
    output_per_m: float  # USD per million output tokens


PRICES: dict[str, Price] = {
    # Anthropic
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    # OpenAI
    "gpt-5": Price(1.25, 10.0),
    "gpt-5-mini": Price(0.25, 2.0),
    "gpt-5-nano": Price(0.05, 0.4),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.4, 1.6),
    "gpt-4.1-nano": Price(0.1, 0.4),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4o-mini": Price(0.15, 0.6),
    "o3": Price(2.0, 8.0),
    "o3-mini": Price(1.1, 4.4),
    "o4-mini": Price(1.1, 4.4),
    # Google
    "gemini-2.5-pro": Price(1.25, 10.0),
    "gemini-2.5-flash": Price(0.3, 2.5),
}


class PriceError(UsageError):
    """A `[prices]` entry or a model name km cannot use."""


def parse_prices(table: object, source: str = "[prices]") -> dict[str, Price]:
    """The `[prices]` table (`model = [input_per_m, output_per_m]`) as Prices; raises
    PriceError naming the first bad entry."""
    if not isinstance(table, Mapping):
        raise PriceError(
            f"{source}: expected a table of `model = [input_per_m, output_per_m]`,"
            f" got {type(table).__name__}"
        )
    out: dict[str, Price] = {}
    for model, value in table.items():
        where = f"{source} {model}"
        if not isinstance(model, str) or not model.strip():
            raise PriceError(f"{source}: a model name must be a non-empty string, got {model!r}")
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise PriceError(
                f"{where}: expected [input_per_m, output_per_m] (USD per million tokens),"
                f" got {value!r}"
            )
        numbers = []
        for part, label in zip(value, ("input", "output"), strict=True):
            if isinstance(part, bool) or not isinstance(part, int | float):
                raise PriceError(f"{where}: the {label} price must be a number, got {part!r}")
            if not math.isfinite(part) or part < 0:
                raise PriceError(
                    f"{where}: the {label} price must be a finite number >= 0, got {part!r}"
                )
            numbers.append(float(part))
        out[model.strip()] = Price(numbers[0], numbers[1])
    return out


def price_table(overrides: Mapping[str, Price] | None = None) -> dict[str, Price]:
    """The built-in prices with `overrides` (from `parse_prices`) on top."""
    table = dict(PRICES)
    if overrides:
        table.update(overrides)
    return table


def price_of(model: str | None = None, table: Mapping[str, Price] | None = None) -> Price:
    """The price of `model` (DEFAULT_MODEL when None). A dated name (`claude-sonnet-4-5-
    20250929`, `gpt-4o-2024-08-06`) falls back to its longest listed prefix. Raises
    PriceError for a model the table does not know."""
    prices = PRICES if table is None else table
    name = (model or DEFAULT_MODEL).strip()
    price = prices.get(name)
    if price is not None:
        return price
    lowered = name.lower()
    best = max(
        (m for m in prices if lowered.startswith(m.lower() + "-") or lowered == m.lower()),
        key=len,
        default=None,
    )
    if best is None:
        raise PriceError(
            f"no price for model {name!r}: add it to config.toml as"
            f" `[prices]` `{name} = [input_per_m, output_per_m]`, or set `model` to one of"
            f" {', '.join(sorted(prices))}"
        )
    return prices[best]


def cost_usd(
    input_tokens: int,
    output_tokens: int,
    model: str | None = None,
    table: Mapping[str, Price] | None = None,
) -> float:
    """USD for `input_tokens` read and `output_tokens` written by `model`."""
    price = price_of(model, table)
    return (
        max(0, input_tokens) * price.input_per_m + max(0, output_tokens) * price.output_per_m
    ) / MILLION
