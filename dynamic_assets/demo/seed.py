"""Demo drive seeding: realistic, reproducible files for the three demo datasets.

Who it is for: anyone who wants to see the pipeline work without a real OneDrive — the
``dynamic-assets seed`` command, the test suite and the benchmarks. :func:`seed_drive` lays out
a folder shaped like the team's drive::

    <root>/
      datasets/<dataset>/<version>/<data files> + README.md
      model-checkpoints/   etl-staging/   reports/

and fills ``datasets/`` with two versions of each dataset declared in ``demo/datasets.yaml``:

* ``market`` — daily OHLCV bars as CSV, one file per exchange (``nasdaq.csv``, ``nyse.csv``),
  versions ``2024-06-01`` and ``2024-07-01``. Prices follow a geometric random walk; the ``note``
  column is mostly empty, but some notes hold commas, double quotes, newlines and non-ASCII text.
* ``corpus`` — multilingual news snippets as JSON Lines (``part-0001.jsonl``) and, in ``v1.1``,
  a JSON array (``extra.json``); versions ``v1.0`` and ``v1.1``.
* ``embeddings`` — 16-dimensional unit vectors that cluster by label, as Parquet
  (``items.parquet``); versions ``v2.3`` and ``v2.3.1``.

The second version of each dataset overlaps the first and differs from it the way a refreshed
delivery does: restated rows, revised documents, re-embedded items and new rows.

Everything is derived from ``seed`` (numpy ``default_rng`` and seeded Faker instances) and from
fixed dates, never from the clock, so seeding the same root twice gives byte-identical files;
a file whose bytes would not change is not rewritten (its modification time stays put).
The generated values match the declared columns, types, primary keys, non-null columns and
expectations; a declaration the generators cannot satisfy is refused with a ``ValueError``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from faker import Faker

from dynamic_assets.declarations.model import DEMO_CONFIG, Dataset, Declarations, load_declarations

DRIVE_FOLDERS = ("datasets", "model-checkpoints", "etl-staging", "reports")

SEED_VERSIONS: dict[str, list[str]] = {
    "market": ["2024-06-01", "2024-07-01"],
    "corpus": ["v1.0", "v1.1"],
    "embeddings": ["v2.3", "v2.3.1"],
}

GENERATOR = "dynamic_assets.demo.seed.seed_drive"


@dataclass(frozen=True)
class SeededFile:
    """One data file written by :func:`seed_drive`; ``path`` is relative to the drive root."""

    dataset: str
    version: str
    path: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class _File:
    name: str
    data: bytes
    rows: int


@dataclass(frozen=True)
class _Version:
    version: str
    created: datetime
    summary: str
    files: list[_File]


# What each generator writes: column -> (declared type, whether it ever writes a null).
_CONTRACTS: dict[str, dict[str, tuple[str, bool]]] = {
    "market": {
        "date": ("date", False),
        "symbol": ("string", False),
        "exchange": ("string", False),
        "open": ("float", False),
        "high": ("float", False),
        "low": ("float", False),
        "close": ("float", False),
        "volume": ("integer", False),
        "note": ("string", True),
    },
    "corpus": {
        "doc_id": ("string", False),
        "lang": ("string", False),
        "title": ("string", True),
        "body": ("string", False),
        "published_at": ("timestamp", False),
        "tokens": ("integer", False),
        "meta": ("json", False),
    },
    "embeddings": {
        "item_id": ("integer", False),
        "label": ("string", False),
        "score": ("float", True),
        "created_at": ("timestamp", False),
        "embedding": ("vector(16)", False),
    },
}


def seed_drive(
    root: Path, declarations: Declarations | None = None, *, scale: int = 1, seed: int = 7
) -> list[SeededFile]:
    """Create (or refresh) the demo drive under ``root`` and return the data files written.

    ``declarations`` defaults to the demo configuration; only the datasets it declares among
    ``market``, ``corpus`` and ``embeddings`` are seeded. ``scale`` multiplies the row counts.
    README.md files are written next to the data but are not part of the returned list.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    if declarations is None:
        declarations = load_declarations(DEMO_CONFIG)
    root = Path(root)
    for folder in DRIVE_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)

    generators = {"market": _market, "corpus": _corpus, "embeddings": _embeddings}
    seeded: list[SeededFile] = []
    for ds in declarations.datasets:
        generate = generators.get(ds.name)
        if generate is None:
            continue
        _check_contract(ds, _CONTRACTS[ds.name])
        rng = np.random.default_rng([seed, zlib.crc32(ds.name.encode())])
        for v in generate(ds, rng, scale):
            folder = root / "datasets" / ds.name / v.version
            folder.mkdir(parents=True, exist_ok=True)
            for f in v.files:
                _write_if_changed(folder / f.name, f.data)
                rel = (folder / f.name).relative_to(root).as_posix()
                seeded.append(SeededFile(ds.name, v.version, rel, f.rows, len(f.data)))
            _write_if_changed(folder / "README.md", _readme(ds, v, scale=scale, seed=seed))
    return seeded


# --------------------------------------------------------------------------- shared helpers


def _check_contract(ds: Dataset, contract: dict[str, tuple[str, bool]]) -> None:
    declared = {c.name: c for c in ds.columns}
    problems = []
    if set(declared) != set(contract):
        problems.append(
            f"it declares columns {sorted(declared)}, the seed writes {sorted(contract)}"
        )
    for name, (typ, writes_nulls) in contract.items():
        col = declared.get(name)
        if col is None:
            continue
        if col.type != typ:
            problems.append(f"column {name!r} is declared {col.type}, the seed writes {typ}")
        if writes_nulls and not col.nullable:
            problems.append(f"column {name!r} is declared non-nullable, the seed writes nulls")
    if problems:
        raise ValueError(f"cannot seed dataset {ds.name!r}: " + "; ".join(problems))


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, and not at all when the file already holds these bytes."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _fixed_time(rng: np.random.Generator, day: date, hour: int = 5) -> datetime:
    """A release moment on ``day``, a seed-derived number of minutes after ``hour`` UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + timedelta(
        minutes=int(rng.integers(0, 240))
    )


def _faker(locale: str, rng: np.random.Generator) -> Faker:
    fake = Faker(locale)
    fake.seed_instance(int(rng.integers(0, 2**31)))
    return fake


def _readme(ds: Dataset, v: _Version, *, scale: int, seed: int) -> bytes:
    lines = [f"# {ds.name} — {v.version}", ""]
    if ds.description:
        lines += [ds.description, ""]
    lines += [v.summary, "", "## Schema", ""]
    lines += ["| column | type | nullable | description |", "| --- | --- | --- | --- |"]
    for c in ds.columns:
        lines.append(
            f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description or ''} |"
        )
    lines.append("")
    if ds.primary_key:
        lines += ["Primary key: " + ", ".join(f"`{k}`" for k in ds.primary_key), ""]
    if ds.expectations:
        lines += ["Expectations:", ""]
        for e in ds.expectations:
            args = ", ".join(f"{k}={val!r}" for k, val in e.kwargs.items())
            lines.append(f"- `{e.type}({args})` ({e.severity})")
        lines.append("")
    lines += ["## Files", "", "| file | rows | bytes |", "| --- | ---: | ---: |"]
    lines += [f"| `{f.name}` | {f.rows} | {len(f.data)} |" for f in v.files]
    lines += [
        "",
        "## Provenance",
        "",
        f"- generator: `{GENERATOR}` (scale={scale})",
        f"- seed: {seed}",
        f"- created: {v.created.isoformat()}",
        f"- sensitivity: {ds.sensitivity}",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


# --------------------------------------------------------------------------- market (CSV)

_HOLIDAYS = {date(2024, 5, 27), date(2024, 6, 19)}  # Memorial Day, Juneteenth
_EXCHANGES = (("nasdaq", "NASDAQ"), ("nyse", "NYSE"))
_IPO_DAY = date(2024, 6, 12)
_DELIST_AFTER = date(2024, 6, 21)
_NOT_SYMBOL_WORDS = {"AND", "INC", "LLC", "LTD", "PLC", "GROUP", "SONS", "CO"}
_HALT_NOTE = 'Trading halted 10:32–10:47 ET, "volatility pause"\nresumed after LULD band reset'
_NOTES = (
    "Q2 earnings after the close; EPS {eps:.2f} vs. {est:.2f} consensus",
    "Ex-dividend: {div:.2f} USD per share",
    '{company}: guidance raised, "strong demand" cited by CFO',
    "Kursziel angehoben – Analyst sieht „deutliches Aufwärtspotenzial“",
    "Rééquilibrage de l'indice : titre ajouté, effectif à la clôture",
    "株式分割 2:1 — stock split effective next session",
    "Block trade of {block:,} shares @ {price:.2f}\nreported after the close",
    _HALT_NOTE,
)


def _trading_days(before: date, count: int) -> list[date]:
    days: list[date] = []
    d = before
    while len(days) < count:
        d -= timedelta(days=1)
        if d.weekday() < 5 and d not in _HOLIDAYS:
            days.append(d)
    return days[::-1]


def _symbol(company: str, taken: set[str], rng: np.random.Generator) -> str:
    words = [re.sub(r"[^A-Z]", "", w.upper()) for w in re.split(r"[\s,\-]+", company)]
    words = [w for w in words if w and w not in _NOT_SYMBOL_WORDS]
    candidates = []
    if words:
        first = words[0]
        candidates += [first[:4], first[:3]]
        if len(words) > 1:
            candidates += ["".join(w[0] for w in words)[:4], first[:2] + words[1][:2]]
    for cand in candidates:
        if cand and cand not in taken:
            return cand
    while True:
        cand = "".join(chr(65 + int(i)) for i in rng.integers(0, 26, int(rng.integers(3, 5))))
        if cand not in taken:
            return cand


def _market(ds: Dataset, rng: np.random.Generator, scale: int) -> list[_Version]:
    v1, v2 = SEED_VERSIONS["market"]
    windows = {
        v1: _trading_days(date.fromisoformat(v1), 20),
        v2: _trading_days(date.fromisoformat(v2), 24),  # June plus the last week of May, restated
    }
    created = {v: _fixed_time(rng, date.fromisoformat(v)) for v in (v1, v2)}
    days = sorted(set(windows[v1]) | set(windows[v2]))
    day_index = {d: i for i, d in enumerate(days)}
    overlap = sorted(set(windows[v1]) & set(windows[v2]))
    fake = _faker("en_US", rng)

    # The ticker universe: ~15 per exchange (per unit of scale), symbols unique across exchanges.
    taken: set[str] = set()
    tickers: list[dict[str, Any]] = []
    for file_stem, exchange in _EXCHANGES:
        for i in range(15 * scale):
            company = fake.company()
            symbol = _symbol(company, taken, rng)
            taken.add(symbol)
            tickers.append(
                {
                    "file": file_stem,
                    "exchange": exchange,
                    "symbol": symbol,
                    "company": company,
                    "first": _IPO_DAY if i % 15 == 14 else days[0],
                    "last": _DELIST_AFTER if exchange == "NYSE" and i % 15 == 7 else days[-1],
                }
            )
    n_d, n_t = len(days), len(tickers)

    # Geometric random walk: close-to-close log returns, an overnight gap, intraday wicks.
    start = np.clip(np.exp(rng.normal(np.log(45.0), 0.9, n_t)), 3.0, 900.0)
    sigma = rng.uniform(0.008, 0.03, n_t)
    mu = rng.normal(0.0004, 0.0008, n_t)
    z = rng.standard_normal((n_d, n_t))
    close = start * np.exp(np.cumsum(mu - sigma**2 / 2 + sigma * z, axis=0))
    prev = np.vstack([start[None, :], close[:-1]])
    open_ = prev * np.exp(rng.standard_normal((n_d, n_t)) * sigma * 0.35)
    wick = np.abs(rng.standard_normal((2, n_d, n_t))) * sigma * 0.6
    o, c = np.round(open_, 2), np.round(close, 2)
    h = np.maximum(np.round(np.maximum(open_, close) * np.exp(wick[0]), 2), np.maximum(o, c))
    lo = np.minimum(np.round(np.minimum(open_, close) * np.exp(-wick[1]), 2), np.minimum(o, c))
    base_volume = np.exp(rng.normal(np.log(1.5e6), 1.0, n_t))
    volume = base_volume * np.exp(rng.normal(0.0, 0.35, (n_d, n_t))) * (1 + 0.5 * np.abs(z))
    volume = volume.astype(np.int64)

    def listed(t: int, d: int) -> bool:
        return tickers[t]["first"] <= days[d] <= tickers[t]["last"]

    # Notes: mostly empty; a few per file, listing events, and one trading halt per file
    # and version (a note with a comma, quotes, a newline and non-ASCII text).
    notes = np.full((n_d, n_t), "", dtype=object)
    for d, t in zip(*np.nonzero(rng.random((n_d, n_t)) < 0.035), strict=True):
        if listed(t, d):
            template = _NOTES[int(rng.integers(0, len(_NOTES)))]
            notes[d, t] = template.format(
                eps=float(rng.uniform(0.1, 4)),
                est=float(rng.uniform(0.1, 4)),
                div=float(rng.uniform(0.05, 1.5)),
                company=tickers[t]["company"],
                block=int(rng.integers(2, 40)) * 50_000,
                price=float(c[d, t]),
            )
    for t, tk in enumerate(tickers):
        if tk["first"] != days[0]:
            d = day_index[tk["first"]]
            volume[d, t] *= 6
            notes[d, t] = f"IPO priced at {o[d, t] * 0.9:.2f} USD; first day of trading"
        if tk["last"] != days[-1]:
            acquirer = tickers[(t + 1) % n_t]["company"]
            notes[day_index[tk["last"]], t] = (
                f"Last trading day; acquisition by {acquirer} completed"
            )
    only = {
        v1: sorted(set(windows[v1]) - set(overlap)),
        v2: sorted(set(windows[v2]) - set(overlap)),
    }
    for file_stem, _ in _EXCHANGES:
        members = [t for t, tk in enumerate(tickers) if tk["file"] == file_stem]
        for v in (v1, v2):
            d = day_index[only[v][int(rng.integers(0, len(only[v])))]]
            candidates = [members[i] for i in rng.permutation(len(members))]
            t = next(t for t in candidates if listed(t, d) and not notes[d, t])
            notes[d, t] = _HALT_NOTE

    # The second delivery restates a few bars of the overlapping week.
    restated: dict[tuple[int, int], tuple[float, float, float, str]] = {}
    for d in (day_index[x] for x in overlap):
        for t in range(n_t):
            if listed(t, d) and rng.random() < 0.05:
                new = round(float(c[d, t]) * (1 + float(rng.normal(0, 0.006))), 2)
                if new == float(c[d, t]):
                    new = round(new + 0.01, 2)
                note = (
                    f"Restated: close corrected from {c[d, t]:.2f} to {new:.2f} (vendor feed error)"
                )
                restated[d, t] = (new, max(float(h[d, t]), new), min(float(lo[d, t]), new), note)

    names = [col.name for col in ds.columns]
    versions = []
    for v in (v1, v2):
        files = []
        for file_stem, _ in _EXCHANGES:
            members = sorted(
                (t for t, tk in enumerate(tickers) if tk["file"] == file_stem),
                key=lambda t: tickers[t]["symbol"],
            )
            rows = []
            for day in windows[v]:
                d = day_index[day]
                for t in members:
                    if not listed(t, d):
                        continue
                    row = {
                        "date": day.isoformat(),
                        "symbol": tickers[t]["symbol"],
                        "exchange": tickers[t]["exchange"],
                        "open": f"{o[d, t]:.2f}",
                        "high": f"{h[d, t]:.2f}",
                        "low": f"{lo[d, t]:.2f}",
                        "close": f"{c[d, t]:.2f}",
                        "volume": str(int(volume[d, t])),
                        "note": notes[d, t],
                    }
                    if v == v2 and (d, t) in restated:
                        new, high, low, note = restated[d, t]
                        row.update(
                            close=f"{new:.2f}", high=f"{high:.2f}", low=f"{low:.2f}", note=note
                        )
                    rows.append([row[n] for n in names])
            buf = io.StringIO(newline="")
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(names)
            writer.writerows(rows)
            files.append(_File(f"{file_stem}.csv", buf.getvalue().encode("utf-8"), len(rows)))
        summary = (
            f"Daily bars for the {len(windows[v])} trading days from {windows[v][0]} to "
            f"{windows[v][-1]}."
        )
        if v == v2:
            summary += (
                f" Restates {len(restated)} bars of the week already delivered in {v1}; "
                "adds new listings and a delisting."
            )
        versions.append(_Version(v, created[v], summary, files))
    return versions


# --------------------------------------------------------------------------- corpus (JSON)

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


def _corpus(ds: Dataset, rng: np.random.Generator, scale: int) -> list[_Version]:
    v1, v2 = SEED_VERSIONS["corpus"]
    created = {v1: _fixed_time(rng, date(2024, 6, 3)), v2: _fixed_time(rng, date(2024, 6, 24))}
    fakers = {lang: _faker(spec[0], rng) for lang, spec in _LANGS.items()}
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
        _Version(
            v1,
            created[v1],
            f"{n1} news snippets published April and May 2024 in {len(langs)} languages.",
            [_File("part-0001.jsonl", jsonl(first), len(first))],
        ),
        _Version(
            v2,
            created[v2],
            f"Revises {n_changed} snippets of {v1}, adds {n_more} new ones to part-0001.jsonl "
            f"and a late batch of {n_extra} as a JSON array (extra.json).",
            [
                _File("part-0001.jsonl", jsonl(part_v2), len(part_v2)),
                _File("extra.json", array(extra), len(extra)),
            ],
        ),
    ]


# --------------------------------------------------------------------------- embeddings (Parquet)

_LABELS = ("electronics", "apparel", "grocery", "home_garden", "books", "toys")
_LABEL_SHARES = np.array([0.24, 0.2, 0.18, 0.16, 0.12, 0.1])
_DIM = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def _micros(rng: np.random.Generator, n: int, first: date, days: int) -> np.ndarray:
    base = int((datetime(first.year, first.month, first.day, tzinfo=UTC) - _EPOCH).total_seconds())
    return np.sort(base * 1_000_000 + rng.integers(0, days * 86_400_000_000, n))


def _embeddings(ds: Dataset, rng: np.random.Generator, scale: int) -> list[_Version]:
    v1, v2 = SEED_VERSIONS["embeddings"]
    created = {v1: _fixed_time(rng, date(2024, 6, 10)), v2: _fixed_time(rng, date(2024, 6, 17))}
    centroids = _unit(rng.standard_normal((len(_LABELS), _DIM)))

    def items(n: int, first_id: int, first: date, days: int) -> dict[str, np.ndarray]:
        label = rng.choice(len(_LABELS), n, p=_LABEL_SHARES)
        score = rng.beta(6.0, 2.0, n)
        return {
            "item_id": first_id + np.cumsum(rng.integers(1, 50, n)),
            "label": label,
            "score": score,
            "null": rng.random(n) < 0.07,
            "created_at": _micros(rng, n, first, days),
            "embedding": _unit(centroids[label] + rng.normal(0.0, 0.18, (n, _DIM))),
        }

    old = items(300 * scale, 100_000, date(2024, 5, 20), 20)

    # v2.3.1 re-scores some items, re-embeds others and appends new ones.
    new = {k: a.copy() for k, a in old.items()}
    n = len(old["item_id"])
    rescored = rng.random(n) < 0.15
    new["score"][rescored] = np.clip(
        new["score"][rescored] + rng.normal(0, 0.05, rescored.sum()), 0, 1
    )
    new["null"][rescored] = False
    reembedded = rng.random(n) < 0.10
    k = int(reembedded.sum())
    new["embedding"][reembedded] = _unit(
        centroids[new["label"][reembedded]] + rng.normal(0.0, 0.18, (k, _DIM))
    )
    new["created_at"][reembedded] = _micros(rng, k, date(2024, 6, 10), 6)
    added = items(30 * scale, int(old["item_id"][-1]), date(2024, 6, 10), 6)
    new = {key: np.concatenate([new[key], added[key]]) for key in new}

    names = [col.name for col in ds.columns]
    fields = {
        "item_id": pa.field("item_id", pa.int64(), nullable=False),
        "label": pa.field("label", pa.string(), nullable=False),
        "score": pa.field("score", pa.float64()),
        "created_at": pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        "embedding": pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    }

    def parquet(data: dict[str, np.ndarray]) -> _File:
        rows = len(data["item_id"])
        arrays = {
            "item_id": pa.array(data["item_id"], pa.int64()),
            "label": pa.array([_LABELS[i] for i in data["label"]], pa.string()),
            "score": pa.array(data["score"], pa.float64(), mask=data["null"]),
            "created_at": pa.array(data["created_at"], pa.timestamp("us", tz="UTC")),
            "embedding": pa.ListArray.from_arrays(
                pa.array(np.arange(0, (rows + 1) * _DIM, _DIM, dtype=np.int32)),
                pa.array(data["embedding"].reshape(-1), pa.float32()),
            ),
        }
        table = pa.Table.from_arrays(
            [arrays[k] for k in names], schema=pa.schema([fields[k] for k in names])
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return _File("items.parquet", sink.getvalue().to_pybytes(), rows)

    return [
        _Version(
            v1,
            created[v1],
            f"{len(old['item_id'])} item embeddings ({_DIM} dimensions) in {len(_LABELS)} label clusters.",
            [parquet(old)],
        ),
        _Version(
            v2,
            created[v2],
            f"Patch release of {v1}: re-scores {int(rescored.sum())} items, re-embeds {k} and "
            f"adds {len(added['item_id'])} new ones.",
            [parquet(new)],
        ),
    ]
