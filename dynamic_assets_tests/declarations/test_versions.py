"""Version names: a date that is a real calendar date, or `vMAJOR.MINOR[.PATCH]` without leading
zeros, in ASCII digits only. Anything else is not a version, and a name that looks like one says
why it is refused."""

from __future__ import annotations

import pytest

from dynamic_assets.declarations.names import is_version, version_name_reason, version_sort_key

VALID = ["2024-06-01", "2024-02-29", "v0.1", "v1.0", "v1.2.3", "v10.20.30", "v2.0.0"]


@pytest.mark.parametrize("name", VALID)
def test_valid_versions_are_versions(name):
    assert is_version(name)
    assert version_name_reason(name) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("v\uff11.0", "ASCII digits only"),  # fullwidth one
        ("v\u0661.\u0662", "ASCII digits only"),  # Arabic-Indic one and two
        ("\uff12\uff10\uff12\uff14-06-01", "ASCII digits only"),
        ("v01.00", "leading zeros"),
        ("v1.02", "leading zeros"),
        ("v1.0.07", "leading zeros"),
        ("2030-02-30", "not a calendar date"),
        ("2024-13-01", "not a calendar date"),
        ("2024-06-01 ", "leading or trailing space"),
        (" v1.0", "leading or trailing space"),
        ("v1.0\n", "leading or trailing space"),
        ("2024-06-01\n", "leading or trailing space"),
    ],
)
def test_names_that_look_like_versions_are_refused_with_the_reason(name, says):
    assert not is_version(name)
    reason = version_name_reason(name)
    assert reason is not None and says in reason
    assert f"{name!r} is not a version" in reason


@pytest.mark.parametrize("name", ["latest", "drafts", "V1", "V1.0", "2024-6-1", "v1.2.3.4"])
def test_other_names_are_not_versions(name):
    assert not is_version(name)
    assert "is not a version" in version_name_reason(name)


def test_versions_sort_by_their_ascii_numbers_only():
    # Before: int() read the fullwidth and Arabic-Indic digits, so these sorted as v1.0 and v1.2.
    assert version_sort_key("v\uff11.0") != version_sort_key("v1.0")
    assert version_sort_key("v\u0661.\u0662") != version_sort_key("v1.2")
    assert version_sort_key("v01.00") != version_sort_key("v1.0")
    ordered = sorted(
        ["v10.0", "v1.2", "2024-06-01", "v1.10", "v1.2.1", "2023-12-31"], key=version_sort_key
    )
    assert ordered == ["2023-12-31", "2024-06-01", "v1.2", "v1.2.1", "v1.10", "v10.0"]


@pytest.mark.parametrize("name", ["v1", "v2", "v10", "v0"])
def test_major_only_folders_are_versions(name):
    assert is_version(name)
    assert version_name_reason(name) is None


def test_major_only_versions_sort_numerically_beside_the_others():
    ordered = sorted(["v10", "v2", "2024-06-01", "v1", "v1.5", "v2.0"], key=version_sort_key)
    assert ordered == ["2024-06-01", "v1", "v1.5", "v2", "v2.0", "v10"]
    assert "leading zeros" in version_name_reason("v01")
