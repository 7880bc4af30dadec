"""Names that come from configuration or from the drive: validation, versions, identifiers.

Every dataset, column and file name is checked here before it reaches SQL or the file system,
and every SQL identifier is quoted by psycopg's ``sql.Identifier``, never by string formatting.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, date, datetime

# Versions are ASCII: `[0-9]` (not `\d`, which is any Unicode digit, and int() reads those too)
# and fullmatch (a `$` would match before a trailing newline).
DATE_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
SEMVER_VERSION = re.compile(r"v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?)?")
# The same shapes in any digits, with leading zeros and surrounding spaces: names meant as a
# version, which are refused with the reason rather than passed over.
DATE_LIKE = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")
SEMVER_LIKE = re.compile(r"\s*v\d+(?:\.\d+(?:\.\d+)?)?\s*")
VERSION_HINT = "use a date (2024-06-01) or v1 / v1.2 / v1.2.3"
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
COLUMN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ \-]{0,62}")
# The column rule in words: the refusal states it, and the README states it the same way.
NAME_RULE = (
    "a column name starts with an ASCII letter (A-Z, a-z), goes on with ASCII letters, "
    "digits, '_', '-' or spaces, and is at most 63 characters long"
)
RESERVED_COLUMNS = {"dataset_version"}
# Columns a writer adds that hold no data of the table: pandas' index, as pyarrow stores it.
WRITER_COLUMNS = re.compile(r"__index_level_[0-9]+__")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Not allowed as a dataset's extra readers: PUBLIC and anon/authenticated would make any dataset
# world-readable behind its declared sensitivity (declare `sensitivity: public` for that); the
# others are SQL keywords or reserved role names.
NOT_READERS = {
    "public",
    "anon",
    "authenticated",
    "none",
    "current_user",
    "current_role",
    "session_user",
}


class InvalidName(ValueError):
    """A dataset, column, version or file name that the pipeline refuses to use."""


def version_name_reason(name: str) -> str | None:
    """Why `name` is not a version, or None if it is one.

    A version is a real calendar date `YYYY-MM-DD` or a version number `vMAJOR[.MINOR[.PATCH]]`
    (v1, v2.3, v2.3.1) without leading zeros, in ASCII digits, with nothing around it.
    """
    if DATE_VERSION.fullmatch(name):
        try:
            date.fromisoformat(name)
        except ValueError as exc:
            return f"{name!r} is not a version: it is not a calendar date ({exc})"
        return None
    if SEMVER_VERSION.fullmatch(name):
        return None
    prefix = f"{name!r} is not a version"
    if not looks_like_version(name):
        return f"{prefix}: {VERSION_HINT}"
    if name != name.strip():
        return f"{prefix}: the name has a leading or trailing space; {VERSION_HINT}"
    odd = next((ch for ch in name if not ch.isascii()), None)
    if odd is not None:
        what = unicodedata.name(odd, f"U+{ord(odd):04X}")
        return f"{prefix}: versions use ASCII digits only (found {what}); {VERSION_HINT}"
    if SEMVER_LIKE.fullmatch(name):
        return f"{prefix}: version numbers have no leading zeros (v1.0, not v01.00)"
    return f"{prefix}: {VERSION_HINT}"


def looks_like_version(name: str) -> bool:
    """A name written as a version (a date or vN[.N[.N]]) in any digits, perhaps with leading zeros
    or surrounding spaces: a folder meant as a version, whether or not it is a valid one."""
    return bool(DATE_LIKE.fullmatch(name) or SEMVER_LIKE.fullmatch(name))


def is_version(name: str) -> bool:
    """A version folder is a date (2024-06-01) or a version number (v2, v2.3, v2.3.1)."""
    return version_name_reason(name) is None


def version_sort_key(version: str) -> tuple:
    """Orders versions: dates by date, version numbers numerically (v2 < v2.0 < v2.0.0 < v2.1 <
    v10: a missing part counts as 0, and the shorter name of equal numbers comes first); dates
    sort before version numbers, and anything that is not a version after both, by its text."""
    if DATE_VERSION.fullmatch(version):
        return (0, version, ())
    m = SEMVER_VERSION.fullmatch(version)
    if m:
        parts = m.groups()
        given = sum(p is not None for p in parts)
        return (1, "", (*(int(p or 0) for p in parts), given))
    return (2, version, ())


def check_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        raise InvalidName(
            f"dataset name {name!r} is not allowed: use lower-case letters, digits and '_', "
            "starting with a letter, at most 48 characters"
        )
    return name


def check_column_name(name: str) -> str:
    """A declared column name: `NAME_RULE` (names starting with '_' are the lineage columns')."""
    if not isinstance(name, str) or not COLUMN_NAME.fullmatch(name):
        raise InvalidName(f"column name {name!r} is not allowed: {NAME_RULE}")
    if name in RESERVED_COLUMNS:
        raise InvalidName(f"column name {name!r} is reserved by the pipeline")
    return name


def snake_case_names(headers: list[str]) -> list[str]:
    """A column name for each header, in lower snake_case, each allowed by `check_column_name`
    and distinct from the others.

    Letters lose their accents (NFKD), runs of anything but ASCII letters and digits become one
    '_' (a lower-to-upper case change too: `adjClose` is `adj_close`), and the name is cut to
    63 characters. A name that would start with a digit gets a `c_` prefix; a header with
    nothing usable is `column_<position>`. A header that is its own name keeps it; another whose
    name is taken (or reserved) gets `_2`, `_3`...
    """
    bases = [_snake_case(header, position) for position, header in enumerate(headers, start=1)]
    own = {b for b, h in zip(bases, headers, strict=True) if b == h} - RESERVED_COLUMNS
    taken = RESERVED_COLUMNS | own
    names = []
    for base, header in zip(bases, headers, strict=True):
        if base == header and base in own:
            names.append(base)
            continue
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base[: 63 - len(str(n)) - 1]}_{n}"
        taken.add(name)
        names.append(name)
    return names


def _snake_case(header: str, position: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    split = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_text)
    base = re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")
    if not base:
        return f"column_{position}"
    if not base[0].isalpha():
        base = f"c_{base}"
    return base[:63].rstrip("_")


def check_role_name(name: str) -> str:
    """A database role named as an extra reader of a dataset (`readers:` in a declaration)."""
    if not isinstance(name, str) or not ROLE_NAME.match(name):
        raise InvalidName(
            f"role name {name!r} is not allowed: lower-case letters, digits and '_', "
            "starting with a letter or '_', at most 63 characters"
        )
    if name in NOT_READERS or name.startswith("pg_"):
        hint = (
            " (to let everyone read a dataset, declare `sensitivity: public`)"
            if name in ("public", "anon", "authenticated")
            else ""
        )
        raise InvalidName(f"role {name!r} cannot be named as a reader{hint}")
    return name


# Unicode's control characters (category Cc: C0, DEL and C1), one pattern instead of a category
# look-up per character: a sensor tick checks every name in the drive.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


NOT_UTF8 = "the name is not valid UTF-8"
# A byte of a name that is not UTF-8, as `listed_name` writes it.
_UNDECODED_BYTE = re.compile(r"\\x[89a-f][0-9a-f]")


def listed_name(name: str) -> str:
    """A name as a listing reports it: a file system's name whose bytes are not UTF-8 (which
    Python hands over with surrogate escapes) has each such byte written as `\\xNN`, so every
    path recorded, printed or stored is text; such a name is then refused (`NOT_UTF8`)."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def unsafe_file_name_reason(name: str) -> str | None:
    """Why a drive file or folder name is refused, or None if it is safe."""
    if name in ("", ".", ".."):
        return f"the name {name!r} is not a file name"
    if ".." in name:
        return "the name contains '..'"
    if "\\" in name and _UNDECODED_BYTE.search(name):
        return NOT_UTF8
    if "/" in name or "\\" in name:
        return "the name contains a path separator"
    if CONTROL_CHARACTER.search(name):
        return "the name contains a control character"
    if len(name.encode("utf-8")) > 255:
        return "the name is longer than 255 bytes"
    return None


def printable(name: str) -> str:
    """A name as it may appear in a message: control characters shown escaped."""
    return "".join(
        ch if unicodedata.category(ch) != "Cc" else ch.encode("unicode_escape").decode()
        for ch in name
    )


def table_suffix(*parts: str) -> str:
    """A short, stable, identifier-safe suffix for physical tables derived from free text."""
    return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:12]


def utc_stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def artifact_name(
    entity: str,
    name: str,
    version: str,
    platform_hint: str,
    ext: str,
    project: str = "dynamic-capital",
    moment: datetime | None = None,
) -> str:
    """`[project]_[entity]_[version]_[timestamp]_[platform-hint].[ext]` from the design card."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", f"{name}-{version}".lower()).strip("-")
    return f"{project}_{entity}_{slug}_{utc_stamp(moment)}_{platform_hint}.{ext.lstrip('.')}"
