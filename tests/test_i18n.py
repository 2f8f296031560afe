"""Catalog.text parses each template once; it must give exactly what string.Formatter gave."""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest

from bot.i18n import Catalog, default_catalog
from bot.money import format_fen


class _ReferenceFormatter(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        value = super().get_value(key, args, kwargs)
        if isinstance(key, str) and key.endswith("_fen") and isinstance(value, int):
            return format_fen(value)
        return value


class _ReferenceLenient(dict[str, Any]):
    def __init__(self, missing: str, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._missing = missing

    def __missing__(self, key: str) -> str:
        return self._missing


def reference_text(
    catalog: Catalog,
    locale: str,
    key: str,
    params: Mapping[str, Any] | None = None,
    missing: str | None = None,
) -> str:
    """Catalog.text as it was before templates were precompiled: str.format every call."""
    messages = catalog._messages  # the raw templates, read the way text() used to
    template = messages.get(locale, messages[catalog.default])[key]
    values: dict[str, Any] = (
        dict(params or {}) if missing is None else _ReferenceLenient(missing, params or {})
    )
    text = _ReferenceFormatter().vformat(template, (), values)
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip("\n")


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


# values that exercise the money rule, non-str values and the blank-line squeeze
SAMPLES: list[Any] = [12345, 0, "", "两行\n\n\n\n之间", "  \n", 7, 3.5]


def _every_template() -> list[tuple[str, str]]:
    catalog = default_catalog()
    return [(loc, key) for loc in catalog.locales for key in sorted(catalog.keys())]


@pytest.mark.parametrize(("locale", "key"), _every_template())
def test_every_shipped_text_matches_str_format(locale: str, key: str) -> None:
    catalog = default_catalog()
    names = _fields(catalog._messages[locale][key])
    for sample in SAMPLES:
        params = {name: sample for name in names}
        # twice: the first call compiles, the second uses the compiled template
        assert catalog.text(locale, key, params) == reference_text(catalog, locale, key, params)
        assert catalog.text(locale, key, params) == reference_text(catalog, locale, key, params)
    # extra parameters are ignored; lenient mode fills the absent ones
    assert catalog.text(locale, key, {"unused": 1, **dict.fromkeys(names, "v")}) == (
        reference_text(catalog, locale, key, dict.fromkeys(names, "v"))
    )
    assert catalog.text(locale, key, missing="") == reference_text(catalog, locale, key, None, "")
    assert catalog.text(locale, key, {}, missing="?") == reference_text(
        catalog, locale, key, {}, "?"
    )
    if names:
        with pytest.raises(KeyError, match=names[0]):
            catalog.text(locale, key)
    else:
        assert catalog.text(locale, key) == reference_text(catalog, locale, key)


def test_money_blank_lines_and_braces() -> None:
    catalog = Catalog(
        {
            "zh-CN": {
                "money": "共 {amount_fen}，{count_fen} 次，{amount}",
                "gap": "头\n\n{middle}\n\n尾\n",
                "braces": "{{字面}} {x}",
                "plain": "\n\n{{无参数}}\n\n\n\n",
            }
        }
    )
    assert catalog.text("zh-CN", "money", {"amount_fen": 9167, "count_fen": "3", "amount": 1}) == (
        "共 ¥91.67，3 次，1"
    )
    assert catalog.text("zh-CN", "gap", {"middle": ""}) == "头\n\n尾"
    assert catalog.text("zh-CN", "braces", {"x": 1}) == "{字面} 1"
    assert catalog.text("zh-CN", "plain") == "{无参数}"
    assert catalog.text("zh-CN", "plain", {"ignored": 1}) == "{无参数}"


def test_unknown_keys_and_parameters_raise() -> None:
    catalog = Catalog({"zh-CN": {"a": "甲 {x}"}, "en": {"a": "A {x}"}})
    with pytest.raises(KeyError):
        catalog.text("zh-CN", "nope")
    with pytest.raises(KeyError, match="x"):
        catalog.text("en", "a", {"y": 1})
    # a mapping with defaults of its own does not hide an absent parameter
    with pytest.raises(KeyError, match="x"):
        catalog.text("en", "a", defaultdict(str))
    assert catalog.text("en", "a", defaultdict(str, x="1")) == "A 1"
    assert catalog.text("fr", "a", {"x": 2}) == "甲 2"  # an unknown locale reads the default
    assert catalog.text("en", "a", missing="…") == "A …"


def test_templates_beyond_plain_fields_still_format() -> None:
    templates = {"spec": "[{x:>5}]", "conv": "{x!r}", "attr": "{x.real}", "pos": "{0}"}
    catalog = Catalog({"zh-CN": templates})
    assert catalog.text("zh-CN", "spec", {"x": "ab"}) == "[   ab]"
    assert catalog.text("zh-CN", "conv", {"x": "ab"}) == "'ab'"
    assert catalog.text("zh-CN", "attr", {"x": 3}) == "3"
    with pytest.raises(IndexError):
        catalog.text("zh-CN", "pos", {"x": 1})


def test_a_malformed_template_raises_at_every_call() -> None:
    catalog = Catalog({"zh-CN": {"bad": "开 {x"}})
    for _ in range(2):
        with pytest.raises(ValueError):
            catalog.text("zh-CN", "bad", {"x": 1})
