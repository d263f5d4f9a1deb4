"""Prices and costs: the table, the `[prices]` override and its errors, the `model` setting."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from km.errors import UsageError
from km.insight.cost import (
    DEFAULT_MODEL,
    PRICES,
    PRICES_DATE,
    Price,
    PriceError,
    cost_usd,
    parse_prices,
    price_of,
    price_table,
)
from km.settings import Settings
from km.uplink.config_file import edit_toml


def test_the_default_model_is_in_the_table_and_dated() -> None:
    assert DEFAULT_MODEL in PRICES
    assert PRICES_DATE[:2] == "20" and len(PRICES_DATE) == 10
    assert all(p.input_per_m >= 0 and p.output_per_m >= p.input_per_m for p in PRICES.values())


def test_cost_of_input_and_output_tokens() -> None:
    table = {"m": Price(3.0, 15.0)}
    assert cost_usd(1_000_000, 0, "m", table) == pytest.approx(3.0)
    assert cost_usd(0, 1_000_000, "m", table) == pytest.approx(15.0)
    assert cost_usd(2_000, 500, "m", table) == pytest.approx(0.006 + 0.0075)
    assert cost_usd(-5, -5, "m", table) == 0.0
    assert cost_usd(1000, 1000) == cost_usd(1000, 1000, DEFAULT_MODEL)


def test_dated_names_fall_back_to_the_longest_listed_prefix() -> None:
    assert price_of("claude-sonnet-4-5-20250929") == PRICES["claude-sonnet-4-5"]
    assert price_of("gpt-4o-mini-2024-07-18") == PRICES["gpt-4o-mini"]
    assert price_of("gpt-4o-2024-08-06") == PRICES["gpt-4o"]
    with pytest.raises(PriceError, match=r"no price for model 'llama-9'.*\[prices\]"):
        price_of("llama-9")
    with pytest.raises(PriceError):
        price_of("gpt-4omega")  # a prefix must end at a dash


def test_overrides_replace_and_add() -> None:
    table = price_table(parse_prices({"gpt-4o": [1, 2], "local": [0, 0.0]}))
    assert table["gpt-4o"] == Price(1.0, 2.0)
    assert table["local"] == Price(0.0, 0.0)
    assert table["claude-sonnet-4-5"] == PRICES["claude-sonnet-4-5"]
    assert price_table() == PRICES and price_table() is not PRICES


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([1, 2], r"expected a table"),
        ({"m": 3}, r"\[prices\] m: expected \[input_per_m, output_per_m\]"),
        ({"m": [1]}, r"expected \[input_per_m, output_per_m\]"),
        ({"m": [1, 2, 3]}, r"expected \[input_per_m, output_per_m\]"),
        ({"m": ["1", 2]}, r"the input price must be a number, got '1'"),
        ({"m": [1, True]}, r"the output price must be a number, got True"),
        ({"m": [-1, 2]}, r"the input price must be a finite number >= 0"),
        ({"m": [1, float("inf")]}, r"the output price must be a finite number >= 0"),
        ({"": [1, 2]}, r"a model name must be a non-empty string"),
    ],
)
def test_bad_prices_name_the_entry(table: object, message: str) -> None:
    with pytest.raises(PriceError, match=message) as caught:
        parse_prices(table)
    assert isinstance(caught.value, UsageError)
    assert "\n" not in str(caught.value)


def test_settings_take_model_from_env_and_prices_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('model = "gpt-4o"\n\n[prices]\ngpt-4o = [2.0, 8.0]\n"my/model" = [0, 1]\n')
    settings = Settings.load({"KM_CONFIG": str(config)})
    settings.load_config_file()
    assert settings.model == "gpt-4o"
    assert settings.prices == {"gpt-4o": Price(2.0, 8.0), "my/model": Price(0.0, 1.0)}
    env = Settings.load({"KM_CONFIG": str(config), "KM_MODEL": "claude-haiku-4-5"})
    env.load_config_file()
    assert env.model == "claude-haiku-4-5"  # the environment wins over the file
    assert Settings.load({}).model is None and Settings.load({}).prices == {}


def test_bad_prices_in_the_config_file_are_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[prices]\ngpt-4o = "cheap"\n')
    settings = Settings.load({"KM_CONFIG": str(config)})
    with pytest.raises(UsageError, match=r"config file .*\[prices\] gpt-4o: expected"):
        settings.load_config_file()


def test_editing_top_level_keys_keeps_the_prices_table() -> None:
    text = '# mine\napi_url = "http://a"\n\n[prices]\ngpt-4o = [1.0, 2.0]  # negotiated\n'
    out = edit_toml(text, {"api_key": "k", "api_url": "http://b"})
    assert tomllib.loads(out) == {
        "api_url": "http://b",
        "api_key": "k",
        "prices": {"gpt-4o": [1.0, 2.0]},
    }
    assert "# negotiated" in out and "# mine" in out
    removed = edit_toml(out, {"api_key": None})
    assert tomllib.loads(removed)["prices"] == {"gpt-4o": [1.0, 2.0]}


def test_a_file_rewritten_from_scratch_keeps_tables() -> None:
    text = 'name = """\nsrv\n"""\n[prices]\nm = [1, 2]\n'  # a multi-line value: rewritten
    out = edit_toml(text, {"name": "other"})
    assert tomllib.loads(out) == {"name": "other", "prices": {"m": [1, 2]}}


def test_docs_list_the_prices_their_date_and_the_default() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "rules-risk.md"
    text = docs.read_text(encoding="utf-8")
    for model, price in PRICES.items():
        assert f"| {model} | {price.input_per_m:g} | {price.output_per_m:g} |" in text, model
    assert PRICES_DATE in text and DEFAULT_MODEL in text
