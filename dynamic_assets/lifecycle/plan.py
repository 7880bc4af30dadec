"""What the next lifecycle pass moves, and why.

By policy: a version beyond its dataset's newest `hot_versions` (in version order) that was
curated more than `archive_after_days` ago goes to the archive. Over `critical_at`, the oldest
versions beyond `hot_versions` go too, oldest curated first, until core is projected under
`warn_at`. With a main tier declared (`storage.main`), a version beyond `hot_versions` goes
from core to main instead (once curated more than `main_days` ago, when the policy sets it),
and over `critical_at` the oldest go to main; a version in main goes on to the archive after
`archive_after_days`. Versions of sensitive datasets never go to main (it applies neither their
readers' grants nor row level security), and one that went there before its dataset was
declared sensitive comes back into core; they are archived encrypted (`lifecycle.encryption`),
so they stay in core while no archive key is configured (`encrypts` false). The newest
`hot_versions` of every dataset always stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dynamic_assets.declarations.model import Declarations
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.declarations.storage import Lifecycle
from dynamic_assets.lifecycle.usage import CoreUsage, VersionUsage, status_of

ARCHIVE = "archive"
MAIN = "main"
CORE = "core"


@dataclass(frozen=True)
class Move:
    dataset: str
    version: str
    source: str
    target: str
    bytes: int
    reason: str


@dataclass(frozen=True)
class Plan:
    moves: list[Move]
    usage: CoreUsage
    kept: list[str]  # why versions beyond policy stay (a line each)

    @property
    def projected_bytes(self) -> int:
        return self.usage.database_bytes - sum(m.bytes for m in self.moves)

    @property
    def projected_status(self) -> str:
        u = self.usage
        return status_of(self.projected_bytes / u.budget_bytes, u.warn_at, u.critical_at)


def policy_of(decls: Declarations, dataset: str) -> Lifecycle:
    """The dataset's declared lifecycle, or the default one (3 hot versions, no age rule)."""
    try:
        declared = decls.dataset(dataset).lifecycle
    except KeyError:
        declared = None
    return declared or Lifecycle()


def plan_pass(
    decls: Declarations, usage: CoreUsage, now: datetime | None = None, *, encrypts: bool = False
) -> Plan:
    """The moves of the next pass; `encrypts`: whether an archive key is configured, without
    which versions of sensitive datasets stay in core."""
    now = now or datetime.now(UTC)
    by_dataset: dict[str, list[VersionUsage]] = {}
    for v in usage.versions:
        by_dataset.setdefault(v.dataset, []).append(v)
    beyond: list[tuple[VersionUsage, Lifecycle]] = []
    kept: list[str] = []
    aged: list[Move] = []
    main = decls.storage.main is not None
    secret: set[str] = set()  # sensitive datasets: never to main (see the module)
    back: list[Move] = []  # versions of sensitive datasets found in main
    for dataset, versions in by_dataset.items():
        policy = policy_of(decls, dataset)
        ordered = sorted(versions, key=lambda v: version_sort_key(v.version))
        older = ordered[: max(len(ordered) - policy.hot_versions, 0)]
        sensitive = dataset in decls.by_name() and decls.dataset(dataset).sensitive
        if sensitive:
            back += [
                Move(
                    dataset,
                    v.version,
                    MAIN,
                    CORE,
                    0,
                    "sensitive: the main tier applies neither its readers' grants nor row "
                    "level security",
                )
                for v in ordered
                if v.tier == MAIN
            ]
        for v in older:
            if v.tier == MAIN:
                if sensitive:
                    continue  # back to core first (above)
                days = policy.archive_after_days
                if days is not None and _age(v, now) > timedelta(days=days):
                    aged.append(_aged_move(v, policy, MAIN))
                continue
            if v.tier != "core":
                continue
            if sensitive and not encrypts:
                kept.append(
                    f"{dataset} {v.version}: stays in core (sensitive: its archive is encrypted, "
                    "and DYNAMIC_ASSETS_ARCHIVE_KEY is not set)"
                )
                continue
            if sensitive:
                secret.add(dataset)
            beyond.append((v, policy))
    moves: list[Move] = []
    for v, policy in beyond:
        days = policy.archive_after_days
        if days is not None and _age(v, now) > timedelta(days=days):
            moves.append(_aged_move(v, policy, "core"))
        elif (
            main
            and v.dataset not in secret
            and (policy.main_days is None or _age(v, now) > timedelta(days=policy.main_days))
        ):
            moves.append(
                Move(
                    v.dataset,
                    v.version,
                    "core",
                    MAIN,
                    v.bytes,
                    f"beyond the {policy.hot_versions} hot version(s)"
                    + (
                        ""
                        if policy.main_days is None
                        else f" and curated more than {policy.main_days} days ago (main_days)"
                    ),
                )
            )
    plan = Plan(back + moves + aged, usage, kept)
    if usage.status != "critical":
        return plan
    chosen = {(m.dataset, m.version) for m in moves}
    warn_bytes = usage.warn_at * usage.budget_bytes
    for v, policy in sorted(beyond, key=lambda p: (_stamp(p[0]), p[0].dataset)):
        if plan.projected_bytes < warn_bytes:
            break
        if (v.dataset, v.version) in chosen:
            continue
        moves.append(
            Move(
                v.dataset,
                v.version,
                "core",
                MAIN if main and v.dataset not in secret else ARCHIVE,
                v.bytes,
                f"core is critical ({usage.fraction:.0%} of {usage.budget_bytes // 1048576} MB "
                f">= {usage.critical_at:.0%}): the oldest version beyond the "
                f"{policy.hot_versions} hot version(s), until under {usage.warn_at:.0%}",
            )
        )
        plan = Plan(back + moves + aged, usage, kept)
    return plan


def _aged_move(v: VersionUsage, policy: Lifecycle, source: str) -> Move:
    return Move(
        v.dataset,
        v.version,
        source,
        ARCHIVE,
        v.bytes if source == "core" else 0,
        f"beyond the {policy.hot_versions} hot version(s) and curated more than "
        f"{policy.archive_after_days} days ago (archive_after_days)",
    )


def _stamp(v: VersionUsage) -> datetime:
    at = v.curated_at
    return at if isinstance(at, datetime) else datetime.min.replace(tzinfo=UTC)


def _age(v: VersionUsage, now: datetime) -> timedelta:
    return now - _stamp(v)
