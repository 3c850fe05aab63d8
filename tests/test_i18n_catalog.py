"""The page's two catalogues (frontend/static/lb-i18n.js) hold the same keys, with the same placeholders: a key
missing in Japanese shows its English fallback or the key itself, a placeholder missing shows `{name}`."""

from __future__ import annotations

import re
from pathlib import Path

CATALOGUE = Path(__file__).resolve().parents[1] / "frontend" / "static" / "lb-i18n.js"
ENTRY = re.compile(r"""^\s{6}(\w+): (?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'),?$""", re.MULTILINE)


def languages() -> dict[str, dict[str, str]]:
    text = CATALOGUE.read_text()
    blocks = re.split(r"^\s{4}(en|ja): \{$", text, flags=re.MULTILINE)
    found = {
        blocks[i]: {key: double or single for key, double, single in ENTRY.findall(blocks[i + 1].split("\n    }")[0])}
        for i in range(1, len(blocks), 2)
    }
    assert set(found) == {"en", "ja"}, set(found)
    return found


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    found = languages()
    en, ja = found["en"], found["ja"]
    entries = len(re.findall(r"^\s{6}\w+: ", CATALOGUE.read_text(), re.MULTILINE))
    assert len(en) + len(ja) == entries, "an entry the parse missed"
    assert sorted(set(en) ^ set(ja)) == []
    differ = {k: (en[k], ja[k]) for k in en if set(re.findall(r"\{\w+\}", en[k])) != set(re.findall(r"\{\w+\}", ja[k]))}
    assert differ == {}
