"""The one scan of the installed distributions answers as importlib.metadata does."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest import installed


def _stdlib(group: str) -> list[tuple[str, str, str]]:
    return [(ep.name, ep.value, ep.dist.name if ep.dist else "") for ep in
            metadata.entry_points(group=group)]  # fmt: skip


def _ours(group: str) -> list[tuple[str, str, str]]:
    return [(ep.name, ep.value, ep.dist.name if ep.dist else "") for ep in
            installed.entry_points(group)]  # fmt: skip


@pytest.mark.parametrize("group", ["ingest", "console_scripts", "pytest11", "no-such-group"])
def test_entry_points_of_this_environment_match_importlib(group: str) -> None:
    assert _ours(group) == _stdlib(group)


def test_versions_of_this_environment_match_importlib() -> None:
    dists = list(metadata.distributions())
    assert len(dists) > 10
    for dist in dists:
        name = dist.metadata["Name"]
        assert installed.version(name) == metadata.version(name), name


def test_a_missing_distribution_has_no_version() -> None:
    assert installed.version("surely-not-installed-anywhere") is None


def _dist_info(site: Path, name: str, version: str, entry: str | None) -> Path:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    if entry is not None:
        (info / "entry_points.txt").write_text(f"[ingest]\n{entry}\n", encoding="utf-8")
    return info


def test_a_distribution_installed_later_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert installed.version("fake-later") is None
    _dist_info(site, "fake_later", "1.2", "later = fake_later_mod")
    assert installed.version("fake-later") == "1.2"
    assert ("later", "fake_later_mod", "fake_later") in _ours("ingest")
    assert _ours("ingest") == _stdlib("ingest")


def test_the_first_distribution_on_the_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _dist_info(second, "fake_twice", "2.0", "twice = second_mod")
    _dist_info(first, "Fake.Twice", "1.0", "twice = first_mod")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    assert installed.version("fake-twice") == metadata.version("fake-twice") == "1.0"
    assert [ep for ep in _ours("ingest") if ep[0] == "twice"] == [
        ep for ep in _stdlib("ingest") if ep[0] == "twice"
    ]
    assert [ep[1] for ep in _ours("ingest") if ep[0] == "twice"] == ["first_mod"]


def test_an_egg_info_folder_reads_its_version_from_its_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "fake_egg.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: fake-egg\nVersion: 0.3.post1\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed.version("fake_egg") == metadata.version("fake_egg") == "0.3.post1"


def test_a_zip_archive_on_the_path_is_read_through_importlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(
            "fake_zipped-4.5.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: fake-zipped\nVersion: 4.5\n",
        )
        zipped.writestr("fake_zipped-4.5.dist-info/entry_points.txt", "[ingest]\nzipped = zm\n")
    monkeypatch.syspath_prepend(str(archive))
    assert installed.version("fake-zipped") == "4.5"
    assert ("zipped", "zm", "fake-zipped") in _ours("ingest")
    assert _ours("ingest") == _stdlib("ingest")


def test_a_path_entry_that_is_missing_unreadable_or_inside_an_archive_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "gone"))
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("lib/module.py", "")
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.syspath_prepend(str(locked))
    monkeypatch.syspath_prepend(str(archive / "lib"))  # a folder inside an archive, first
    if os.geteuid() != 0:  # root reads it anyway
        locked.chmod(0)
    try:
        assert _ours("ingest") == _stdlib("ingest")
    finally:
        locked.chmod(0o755)


def test_an_unchanged_path_is_not_scanned_again(monkeypatch: pytest.MonkeyPatch) -> None:
    first = installed.scan()
    monkeypatch.setattr(installed, "_scan_now", lambda _seen: pytest.fail("scanned again"))
    assert installed.scan() is first


_NAME = st.from_regex(
    re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,20}[A-Za-z0-9])?"), fullmatch=True
)


@given(_NAME)
def test_names_are_normalised_as_importlib_does(name: str) -> None:
    # Spellings of one name must find one distribution, as they do for importlib.metadata.
    assert installed.normalize(name) == metadata.Prepared.normalize(name)
