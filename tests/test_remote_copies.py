"""A worker's copies of store objects: one download for all the tasks of a document.

``fetched`` with ``keep=True`` (a worker's task) keeps the last copies by URL and stamp, so
the page ranges of a long document read the copy the first range made; a replaced object
(another stamp) or a copy whose bytes are not those the document's first task read is
downloaded again. Copies live in one folder per process, deleted at its exit; the folder of
a process that died without deleting it is removed by the next process that makes its own.
Everything runs against moto's S3 server through the real remote plugin.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs", reason="the object-store tests need ingest[s3]")
pytest.importorskip(
    "moto.moto_server.werkzeug_app", reason="the object-store tests need moto[server]"
)

import pdfgen
from ingest import DocumentError, Source
from ingest.config import build_settings_model
from ingest.manager import build_manager
from ingest.workers.fetch import FOLDER_PREFIX, KEPT_COPIES, fetched
from ingest_plugins import remote
from s3server import S3Server

pytestmark = pytest.mark.usefixtures("aws_environment")


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pdfs")
    return [pdfgen.multipage_pdf(folder / f"doc{n}.pdf", pages=n + 1) for n in range(4)]


def _setup(s3: S3Server) -> tuple[Any, Any]:
    manager = build_manager()
    settings = build_settings_model(manager.collect_sections())(remote=s3.options())
    return manager, settings


def _listed(s3: S3Server, settings: Any, bucket: str) -> dict[str, Source]:
    found = remote.ingest_collect(path=f"s3://{bucket}/docs/", settings=settings) or []
    return {Path(str(s.path)).name: s for s in found if isinstance(s, Source)}


def test_the_ranges_of_a_document_read_the_copy_of_its_first_task(
    s3: S3Server, pdfs: list[Path]
) -> None:
    manager, settings = _setup(s3)
    bucket = s3.new_bucket(pdfs[:1])
    source = _listed(s3, settings, bucket)["doc0.pdf"]
    assert source.stamp
    with fetched(manager, settings, source, keep=True) as first:
        path, content_id = first.path, first.content_id
    assert content_id == hashlib.sha256(pdfs[0].read_bytes()).hexdigest()
    assert Path(path).exists()  # kept for the next range
    ranged = replace(source, content_id=content_id)
    for _ in range(3):
        with fetched(manager, settings, ranged, same_bytes=True, keep=True) as again:
            assert again.path == path and again.content_id == content_id
    assert s3.requests.object_gets(bucket) == ["docs/doc0.pdf"]


def test_a_replaced_object_is_downloaded_again(s3: S3Server, pdfs: list[Path]) -> None:
    manager, settings = _setup(s3)
    bucket = s3.new_bucket(pdfs[:1])
    old = _listed(s3, settings, bucket)["doc0.pdf"]
    with fetched(manager, settings, old, keep=True) as copy:
        old_id = copy.content_id
    s3.client().upload_file(str(pdfs[1]), bucket, "docs/doc0.pdf")
    new = _listed(s3, settings, bucket)["doc0.pdf"]
    assert new.stamp != old.stamp
    with fetched(manager, settings, new, keep=True) as copy:
        assert copy.content_id == hashlib.sha256(pdfs[1].read_bytes()).hexdigest() != old_id
    assert s3.requests.object_gets(bucket) == ["docs/doc0.pdf"] * 2


def test_a_kept_copy_of_other_bytes_is_not_read_for_a_range(
    s3: S3Server, pdfs: list[Path]
) -> None:
    """A range whose first task read other bytes (another worker, the object replaced under
    the same stamp) gets a fresh copy, and fails as changed when that differs too."""
    manager, settings = _setup(s3)
    bucket = s3.new_bucket(pdfs[:1])
    source = _listed(s3, settings, bucket)["doc0.pdf"]
    with fetched(manager, settings, source, keep=True):
        pass
    other = replace(source, content_id="0" * 64)
    with (
        pytest.raises(DocumentError, match="replaced while the run read it") as caught,
        fetched(manager, settings, other, same_bytes=True, keep=True),
    ):
        pass
    assert caught.value.reason == "changed"
    assert s3.requests.object_gets(bucket) == ["docs/doc0.pdf"] * 2


def test_copies_not_kept_are_deleted_and_kept_ones_are_bounded(
    s3: S3Server, pdfs: list[Path]
) -> None:
    manager, settings = _setup(s3)
    bucket = s3.new_bucket(pdfs)
    listed = _listed(s3, settings, bucket)
    with fetched(manager, settings, listed["doc0.pdf"]) as whole:
        assert whole.path.exists()
    assert not whole.path.exists()  # a whole document read in-process keeps nothing
    paths = []
    for name in sorted(listed):
        with fetched(manager, settings, listed[name], keep=True) as copy:
            paths.append(copy.path)
    assert len(paths) == KEPT_COPIES + 2
    assert [p.exists() for p in paths] == [False] * 2 + [True] * KEPT_COPIES


def test_a_process_deletes_its_copies_at_exit_and_removes_the_dead_ones(
    s3: S3Server, pdfs: list[Path], tmp_path: Path
) -> None:
    """A worker killed mid-download leaves its folder; the next process that copies an
    object removes it (its pid is gone), and deletes its own at exit."""
    bucket = s3.new_bucket(pdfs[:1])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f"{FOLDER_PREFIX}{int(gone.stdout)}-abc"
    (dead / "x").mkdir(parents=True)
    (dead / "x" / "half.pdf").write_bytes(b"%PDF-1.7 half")
    alive = tmp_path / f"{FOLDER_PREFIX}{os.getpid()}-abc"
    alive.mkdir()
    other = tmp_path / "ingest-fetch-notes"
    other.mkdir()
    script = textwrap.dedent(
        f"""
        import json, sys
        from ingest.config import build_settings_model
        from ingest.manager import build_manager
        from ingest.workers.fetch import fetched
        from ingest_plugins import remote
        manager = build_manager()
        settings = build_settings_model(manager.collect_sections())(remote=json.loads(sys.argv[1]))
        source = remote.ingest_collect(path="s3://{bucket}/docs/doc0.pdf", settings=settings)[0]
        with fetched(manager, settings, source, keep=True) as copy:
            print(copy.path)
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(s3.options())],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    copy = Path(done.stdout.strip())
    assert copy.is_relative_to(tmp_path) and copy.parent.parent.name.startswith(FOLDER_PREFIX)
    assert not copy.parent.parent.exists()  # deleted at exit
    assert not dead.exists()
    assert alive.exists() and other.exists()
