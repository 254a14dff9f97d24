"""Objects in a store read by worker processes and by a Dask cluster, page ranges included.

The worker processes (``--workers 2``) and the Dask workers copy each object from moto's S3
server themselves; a 40-page PDF is split into page ranges, which a worker that copied the
object reads from its copy (a pool worker downloads it once at most). Both must write
what the same files write from disk.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs", reason="the object-store tests need ingest[s3]")
pytest.importorskip(
    "moto.moto_server.werkzeug_app", reason="the object-store tests need moto[server]"
)

from click.testing import CliRunner
from helpers import CORPUS, EXAMPLES, MISSING_DASK
from ingest.cli import main
from s3server import S3Server
from test_remote import long_pdf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    for pdf in EXAMPLES.glob("*.pdf"):
        shutil.copy(pdf, folder / pdf.name)
    if CORPUS.is_dir():
        for pdf in sorted(CORPUS.glob("*.pdf"))[:6]:
            shutil.copy(pdf, folder / pdf.name)
    long_pdf(folder / "long.pdf", 40)
    return folder


def run_cli(workdir: Path, source: str, config: dict[str, Any], *args: str) -> dict[str, Any]:
    """``ingest run`` into a JSONL and an SQLite sink; the records, pages and exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ingest.yaml").write_text(json.dumps(config))
    out, db = workdir / "out.jsonl", workdir / "out.db"
    result = CliRunner().invoke(
        main,
        ["run", source, "-c", str(workdir / "ingest.yaml"), "--sink", f"jsonl:{out}",
         "--sink", f"sqlite:{db}", "-o", "cache.enabled=false",
         *args],
        catch_exceptions=False,
    )  # fmt: skip
    records = []
    for line in out.read_text("utf-8").splitlines():
        record = json.loads(line)
        record["source"] = Path(str(record["source"])).name
        records.append(record)
    with sqlite3.connect(db) as connection:
        pages = connection.execute(
            "SELECT doc_id, number, text FROM pages ORDER BY doc_id, number"
        ).fetchall()
    return {
        "exit": result.exit_code,
        "records": sorted(records, key=lambda r: str(r["chunk_id"])),
        "pages": pages,
        "output": result.output,
    }


@pytest.fixture(scope="module")
def on_disk(files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_cli(tmp_path_factory.mktemp("disk"), str(files), {}, "--workers", "2")


def test_worker_processes_read_the_store(
    s3: S3Server, files: Path, on_disk: dict[str, Any], tmp_path: Path
) -> None:
    bucket = s3.new_bucket(files.iterdir())
    run = run_cli(tmp_path, f"s3://{bucket}/docs/", {"remote": s3.options()}, "--workers", "2")
    assert run["exit"] == on_disk["exit"] == 0, run["output"]
    assert run["records"] == on_disk["records"]
    assert run["pages"] == on_disk["pages"]
    # 40 pages, split in ranges (16 pages first): no worker downloads the object twice.
    assert 1 <= s3.requests.object_gets(bucket).count("docs/long.pdf") <= 2


def test_a_dask_cluster_reads_the_store(
    s3: S3Server, files: Path, on_disk: dict[str, Any], tmp_path: Path, dask_address: str
) -> None:
    pytest.importorskip("distributed", reason=MISSING_DASK)
    bucket = s3.new_bucket(files.iterdir())
    run = run_cli(
        tmp_path,
        f"s3://{bucket}/docs/",
        {"remote": s3.options(), "dask": {"ship_bytes": True}},
        "--executor", "dask", "--scheduler", dask_address,
    )  # fmt: skip
    assert run["exit"] == 0, run["output"]
    assert run["records"] == on_disk["records"]
    assert run["pages"] == on_disk["pages"]
    # Dask places the ranges itself: a worker may have read other documents in between and
    # dropped its copy, so only the workers' own reads are certain.
    assert s3.requests.object_gets(bucket).count("docs/long.pdf") >= 1


def test_the_workers_of_a_store_run_are_forked_from_the_template(
    s3: S3Server, files: Path, tmp_path: Path
) -> None:
    """Listing a store starts fsspec's I/O thread in the driver; the workers' template is
    forked before it, so the workers are still forked, not fresh interpreters."""
    from test_template import cli, probed

    bucket = s3.new_bucket(files.iterdir())
    config = tmp_path / "ingest.yaml"
    config.write_text(json.dumps({"remote": s3.options()}))
    command, env = cli(tmp_path, f"s3://{bucket}/docs/", "-c", str(config), progress="log")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = probed(tmp_path / "probe.log")
    assert len(lines) >= len(list(files.iterdir()))
    assert all("ingest.workers.child" not in line["cmdline"] for line in lines), lines[0]


def _events(output: str) -> dict[str, dict[str, Any]]:
    events = {}
    for line in output.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["event"] in {"ingested", "failed"}:
                events[event["source"]] = event
    return events


def test_timeouts_and_memory_caps_hold_for_store_objects(s3: S3Server, tmp_path: Path) -> None:
    """A store object is a local copy by the time it is read: a hanging one times out and a
    hungry one meets the memory cap, each failing alone under its URL."""
    from test_workers import FAULTS, variant

    docs = tmp_path / "docs"
    for name in ("hang.pdf", "hog.pdf", "good.pdf"):
        variant(docs, name)
    bucket = s3.new_bucket(sorted(docs.iterdir()))
    config = tmp_path / "ingest.yaml"
    config.write_text(json.dumps({"remote": s3.options()}))
    result = CliRunner().invoke(
        main,
        ["run", f"s3://{bucket}/docs/", "-c", str(config), "--workers", "2", "-p", FAULTS,
         "--timeout", "3", "-o", "run.timeout_per_page=0", "--max-memory", "300MiB",
         "--progress", "json", "--sink", f"jsonl:{tmp_path / 'out.jsonl'}",
         "-o", "cache.enabled=false"],
        catch_exceptions=False,
    )  # fmt: skip
    events = _events(result.stdout)
    url = f"s3://{bucket}/docs/"
    assert result.exit_code == 1, result.output
    hang, hog = events[url + "hang.pdf"], events[url + "hog.pdf"]
    assert (hang["reason"], hang["plugin"]) == ("timeout", FAULTS)
    assert "longer than 3s" in hang["message"]
    assert (hog["reason"], hog["plugin"]) == ("memory", FAULTS)
    assert "run.max_memory" in hog["message"]
    assert events[url + "good.pdf"]["event"] == "ingested", events[url + "good.pdf"]["message"]


def test_ocr_reads_a_scanned_store_object(s3: S3Server, tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR case needs ingest[ocr]")
    from ocrgen import KNOWN_TEXT, Scan, cer, scanned_pdf

    scan = scanned_pdf(tmp_path / "scan.pdf", [Scan()])
    bucket = s3.new_bucket([scan])
    config = tmp_path / "ingest.yaml"
    config.write_text(json.dumps({"remote": s3.options(), "ocr": {"engine": "rapidocr"}}))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["run", f"s3://{bucket}/docs/", "-c", str(config), "--workers", "2", "--plugin", "ocr",
         "--progress", "json", "--sink", f"jsonl:{out}", "-o", "cache.enabled=false"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _events(result.stdout)[f"s3://{bucket}/docs/scan.pdf"]["event"] == "ingested"
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert cer(" ".join(record["text"] for record in records), KNOWN_TEXT) < 0.1, records
