"""The demo `corpus` dataset: multilingual news snippets as JSON Lines and, in the second
version, a JSON array with revised and new documents."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np

from dynamic_assets.declarations.model import Dataset
from dynamic_assets.demo.generate import (
    SEED_VERSIONS,
    GeneratedFile,
    GeneratedVersion,
    faker,
    fixed_time,
)

# What the generator writes: column -> (declared type, whether it ever writes a null).
CONTRACT: dict[str, tuple[str, bool]] = {
    "doc_id": ("string", False),
    "lang": ("string", False),
    "title": ("string", True),
    "body": ("string", False),
    "published_at": ("timestamp", False),
    "tokens": ("integer", False),
    "meta": ("json", False),
}


# lang -> (Faker locale, UTC offset in hours of its newsroom, share of documents, correction word)
_LANGS = {
    "en": ("en_US", -4, 0.34, "Correction:"),
    "de": ("de_DE", 2, 0.12, "Korrektur:"),
    "fr": ("fr_FR", 2, 0.10, "Rectificatif :"),
    "es": ("es_ES", 2, 0.10, "Corrección:"),
    "ja": ("ja_JP", 9, 0.08, "訂正："),
    "zh": ("zh_CN", 8, 0.10, "更正："),
    "ar": ("ar_AA", 3, 0.08, "تصحيح:"),
    "ru": ("ru_RU", 3, 0.08, "Исправление:"),
}
_SECTIONS = ("markets", "business", "technology", "world", "science", "culture")
_TAGS = ("earnings", "energy", "ai", "policy", "health", "climate", "chips", "rates", "retail")
_TOKEN = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]|[^\W\u3040-\u30ff\u4e00-\u9fff]+|[^\w\s]")


def _tokens(text: str) -> int:
    """A rough token count: words, punctuation marks and single CJK characters."""
    return len(_TOKEN.findall(text))


def _moments(rng: np.random.Generator, n: int, first: date, last: date) -> list[datetime]:
    """``n`` sorted moments between the starts of ``first`` and ``last`` (UTC)."""
    base = datetime(first.year, first.month, first.day, tzinfo=UTC)
    span = (last - first).days * 86_400
    return [base + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, span, n))]


def generate(ds: Dataset, rng: np.random.Generator, scale: int) -> list[GeneratedVersion]:
    v1, v2 = SEED_VERSIONS["corpus"]
    created = {v1: fixed_time(rng, date(2024, 6, 3)), v2: fixed_time(rng, date(2024, 6, 24))}
    fakers = {lang: faker(spec[0], rng) for lang, spec in _LANGS.items()}
    langs = list(_LANGS)
    shares = np.array([spec[2] for spec in _LANGS.values()])
    shares /= shares.sum()

    def document(n: int, moment: datetime) -> dict[str, Any]:
        lang = langs[int(rng.choice(len(langs), p=shares))]
        fake = fakers[lang]
        title = None
        if rng.random() >= 0.03:
            title = fake.sentence(nb_words=int(rng.integers(4, 10))).rstrip(".。")
        paragraphs = int(rng.integers(1, 4))
        body = "\n\n".join(
            fake.paragraph(nb_sentences=int(rng.integers(2, 6))) for _ in range(paragraphs)
        )
        tags = sorted(str(x) for x in rng.choice(_TAGS, int(rng.integers(1, 4)), replace=False))
        local = timezone(timedelta(hours=_LANGS[lang][1]))
        return {
            "doc_id": f"doc-{n:06d}",
            "lang": lang,
            "title": title,
            "body": body,
            "published_at": moment.astimezone(local).isoformat(timespec="seconds"),
            "tokens": _tokens(body),
            "meta": {
                "source": {"name": fake.company(), "domain": fake.domain_name()},
                "section": _SECTIONS[int(rng.integers(0, len(_SECTIONS)))],
                "tags": tags,
                "revision": 1,
            },
        }

    n1, n_more, n_extra = 200 * scale, 20 * scale, 50 * scale
    first = [
        document(i + 1, m)
        for i, m in enumerate(_moments(rng, n1, date(2024, 4, 1), date(2024, 6, 1)))
    ]
    later = [
        document(n1 + i + 1, m)
        for i, m in enumerate(_moments(rng, n_more + n_extra, date(2024, 6, 1), date(2024, 6, 22)))
    ]

    # v1.1 revises a few documents of v1.0 (a correction paragraph, a new revision number).
    revised = []
    for doc in first:
        if rng.random() < 0.08:
            fake = fakers[doc["lang"]]
            doc = json.loads(json.dumps(doc))
            doc["body"] += f"\n\n{_LANGS[doc['lang']][3]} {fake.sentence(nb_words=8)}"
            doc["tokens"] = _tokens(doc["body"])
            doc["meta"]["revision"] = 2
        revised.append(doc)
    n_changed = sum(a is not b for a, b in zip(first, revised, strict=True))

    names = [col.name for col in ds.columns]

    def jsonl(docs: list[dict[str, Any]]) -> bytes:
        lines = (json.dumps({k: d[k] for k in names}, ensure_ascii=False) + "\n" for d in docs)
        return "".join(lines).encode("utf-8")

    def array(docs: list[dict[str, Any]]) -> bytes:
        text = json.dumps([{k: d[k] for k in names} for d in docs], ensure_ascii=False, indent=2)
        return (text + "\n").encode("utf-8")

    part_v2, extra = revised + later[:n_more], later[n_more:]
    return [
        GeneratedVersion(
            v1,
            created[v1],
            f"{n1} news snippets published April and May 2024 in {len(langs)} languages.",
            [GeneratedFile("part-0001.jsonl", jsonl(first), len(first))],
        ),
        GeneratedVersion(
            v2,
            created[v2],
            f"Revises {n_changed} snippets of {v1}, adds {n_more} new ones to part-0001.jsonl "
            f"and a late batch of {n_extra} as a JSON array (extra.json).",
            [
                GeneratedFile("part-0001.jsonl", jsonl(part_v2), len(part_v2)),
                GeneratedFile("extra.json", array(extra), len(extra)),
            ],
        ),
    ]
