"""The language of what callsight writes for people (processing record, mails): the site's
CALLSIGHT_LOCALE, a recipient's `locale` in the org directory, and a tiny message catalogue.

Text is written in English in the code as a template (`Msg`); a catalogue maps each English template to
its German one. The facts are the template's parameters, so both languages state the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LANGUAGES = ("de", "en")
DEFAULT_LOCALE = "de"  # German sites: the same default as Superset's UI (superset_config.py)

Catalogue = Mapping[str, str]  # English template -> German template


def parse_locale(value: str | None, name: str = "CALLSIGHT_LOCALE") -> str:
    """Pure: `de` or `en` from a setting such as `de`, `en`, `de_DE` or `de_DE.UTF-8`; empty gives the default."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_LOCALE
    lang = text.lower()[:2]
    if lang not in LANGUAGES or (len(text) > 2 and text[2] not in "_-."):
        raise ValueError(f"{name} must be de or en (or de_DE, en_US, ...), got {value!r}")
    return lang


@dataclass(frozen=True)
class Msg:
    """An English template and its parameters (facts); rendered per language by `render`."""

    template: str
    params: tuple[tuple[str, object], ...] = ()


def msg(template: str, **params: object) -> Msg:
    return Msg(template, tuple(params.items()))


def render(text: object, lang: str, catalogue: Catalogue) -> str:
    """Pure: a Msg in `lang` (parameters that are Msgs or lists of them rendered too, lists joined
    with '; '); anything else as str. A template missing from the catalogue stays English."""
    if isinstance(text, Msg):
        template = catalogue.get(text.template, text.template) if lang == "de" else text.template
        return template.format(**{k: render(v, lang, catalogue) for k, v in text.params})
    if isinstance(text, list | tuple):
        return "; ".join(render(t, lang, catalogue) for t in text)
    return str(text)


def templates(text: object) -> set[str]:
    """Pure: every template in a Msg, list or nested structure (for catalogue coverage checks)."""
    if isinstance(text, Msg):
        return {text.template}.union(*(templates(v) for _, v in text.params))
    if isinstance(text, list | tuple):
        return set().union(*(templates(t) for t in text)) if text else set()
    return set()


def untranslated(texts: Sequence[object], catalogue: Catalogue) -> set[str]:
    """Pure: templates used in `texts` that the German catalogue lacks."""
    return set().union(*(templates(t) for t in texts)) - set(catalogue) if texts else set()
