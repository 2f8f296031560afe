"""Message catalogs: every text a person sees, by key, per locale (zh-CN default, en)."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.money import format_fen

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT_LOCALE = "zh-CN"


class _Formatter(string.Formatter):
    """str.format where a parameter named *_fen is money: 9167 -> ¥91.67."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        value = super().get_value(key, args, kwargs)
        if isinstance(key, str) and key.endswith("_fen") and isinstance(value, int):
            return format_fen(value)
        return value


_FORMATTER = _Formatter()


class _Lenient(dict[str, Any]):
    """Parameters where an absent one reads as a fixed text."""

    def __init__(self, missing: str, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._missing = missing

    def __missing__(self, key: str) -> str:
        return self._missing


_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = str(value)
    return flat


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in _FORMATTER.parse(template) if name}


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A template parsed once: texts are asked for several times a turn, and re-parsing the
    template through string.Formatter each time was most of a turn's CPU."""

    template: str
    # the finished text of a template without fields: no parameter can change it
    fixed: str | None = None
    # (literal text, parameter name or None) in order, for templates of plain {name} fields
    parts: tuple[tuple[str, str | None], ...] | None = None


def _compile(template: str) -> _Compiled:
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError:
        return _Compiled(template)  # malformed: vformat raises its own error at every call
    if all(name is None for _, name, _, _ in parsed):
        return _Compiled(template, fixed=_squeeze("".join(literal for literal, *_ in parsed)))
    if all(
        name is None or (name.isidentifier() and not spec and conversion is None)
        for _, name, spec, conversion in parsed
    ):
        return _Compiled(template, parts=tuple((literal, name) for literal, name, _, _ in parsed))
    # a format spec, a conversion, an attribute or an index: string.Formatter does those
    return _Compiled(template)


def _squeeze(text: str) -> str:
    # an empty optional parameter must not leave a gap of blank lines behind
    return _BLANK_LINES.sub("\n\n", text).strip("\n")


class Catalog:
    def __init__(self, messages: Mapping[str, Mapping[str, str]], default: str = DEFAULT_LOCALE):
        self._messages = {loc: dict(keys) for loc, keys in messages.items()}
        self.default = default
        # (locale asked for, key) -> its template parsed, filled on first use
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR, default: str = DEFAULT_LOCALE) -> Catalog:
        """Read every `<locale>.yaml` in `directory` (nested mappings become dotted keys)."""
        messages = {}
        for path in sorted(directory.glob("*.yaml")):
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            messages[path.stem] = _flatten(tree)
        return cls(messages, default)

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self._messages)

    def keys(self) -> set[str]:
        """Every key defined in at least one locale."""
        return set().union(*(set(keys) for keys in self._messages.values()))

    def has(self, key: str) -> bool:
        return all(key in keys for keys in self._messages.values())

    def locale_for(self, wanted: str | None) -> str:
        """The catalog locale closest to a client's language code ('en-US' -> 'en')."""
        if not wanted:
            return self.default
        if wanted in self._messages:
            return wanted
        base = wanted.split("-")[0].lower()
        for loc in self._messages:
            if loc.split("-")[0].lower() == base:
                return loc
        return self.default

    def text(
        self,
        locale: str,
        key: str,
        params: Mapping[str, Any] | None = None,
        missing: str | None = None,
    ) -> str:
        """The text of `key` in `locale` with `params` filled in; KeyError if the key is unknown
        (or a parameter is, unless `missing` says what to show instead)."""
        compiled = self._compiled.get((locale, key))
        if compiled is None:
            template = self._messages.get(locale, self._messages[self.default])[key]
            compiled = self._compiled[(locale, key)] = _compile(template)
        if compiled.fixed is not None:
            return compiled.fixed
        values: Mapping[str, Any]
        if missing is not None:
            values = _Lenient(missing, params or {})
        elif type(params) is dict:
            values = params  # only read: a plain dict needs no defensive copy
        else:
            # a copy, so a mapping with defaults of its own (defaultdict) still raises KeyError
            values = dict(params or {})
        if compiled.parts is None:
            return _squeeze(_FORMATTER.vformat(compiled.template, (), values))
        out: list[str] = []
        for literal, name in compiled.parts:
            out.append(literal)
            if name is not None:
                value = values[name]
                if name.endswith("_fen") and isinstance(value, int):
                    value = format_fen(value)  # as _Formatter.get_value does
                out.append(format(value, ""))
        return _squeeze("".join(out))

    def problems(self, used_keys: Iterable[str] = ()) -> list[str]:
        """Keys missing from a locale, placeholders that differ between locales, unknown keys."""
        found: list[str] = []
        every = self.keys()
        for loc, keys in self._messages.items():
            for key in sorted(every - set(keys)):
                found.append(f"locales/{loc}.yaml: missing key {key}")
        reference = self._messages.get(self.default, {})
        for loc, keys in self._messages.items():
            for key, template in keys.items():
                if key in reference and _fields(template) != _fields(reference[key]):
                    found.append(
                        f"locales/{loc}.yaml: {key} uses {sorted(_fields(template))}, "
                        f"{self.default} uses {sorted(_fields(reference[key]))}"
                    )
        for key in sorted(set(used_keys) - every):
            found.append(f"message key {key} is used but defined in no locale")
        return found


@cache
def default_catalog() -> Catalog:
    """The shipped catalogs (read once)."""
    return Catalog.load()
