"""The demo `market` dataset: daily OHLCV bars as CSV, one file per exchange, two versions a
month apart whose overlap is restated."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
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
    "date": ("date", False),
    "symbol": ("string", False),
    "exchange": ("string", False),
    "open": ("float", False),
    "high": ("float", False),
    "low": ("float", False),
    "close": ("float", False),
    "volume": ("integer", False),
    "note": ("string", True),
}


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


def generate(ds: Dataset, rng: np.random.Generator, scale: int) -> list[GeneratedVersion]:
    v1, v2 = SEED_VERSIONS["market"]
    windows = {
        v1: _trading_days(date.fromisoformat(v1), 20),
        v2: _trading_days(date.fromisoformat(v2), 24),  # June plus the last week of May, restated
    }
    created = {v: fixed_time(rng, date.fromisoformat(v)) for v in (v1, v2)}
    days = sorted(set(windows[v1]) | set(windows[v2]))
    day_index = {d: i for i, d in enumerate(days)}
    overlap = sorted(set(windows[v1]) & set(windows[v2]))
    fake = faker("en_US", rng)

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
            files.append(
                GeneratedFile(f"{file_stem}.csv", buf.getvalue().encode("utf-8"), len(rows))
            )
        summary = (
            f"Daily bars for the {len(windows[v])} trading days from {windows[v][0]} to "
            f"{windows[v][-1]}."
        )
        if v == v2:
            summary += (
                f" Restates {len(restated)} bars of the week already delivered in {v1}; "
                "adds new listings and a delisting."
            )
        versions.append(GeneratedVersion(v, created[v], summary, files))
    return versions
