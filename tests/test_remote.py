"""Inputs in an object store (``ingest run s3://bucket/prefix/``) against a real S3 API.

moto's server answers on a loopback port (:mod:`s3server`); the runs read it through fsspec
and s3fs exactly as they would read AWS. The store must give the records the same files give
on disk, a rerun must not download an unchanged object, a replaced or deleted object must
be replaced or pruned, and every failure (no bucket, access denied, a store gone mid-run, a
key that is not a PDF) is one line naming the URL.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs", reason="the object-store tests need ingest[s3]")
pytest.importorskip(
    "moto.moto_server.werkzeug_app", reason="the object-store tests need moto[server]"
)

import pdfgen
from click.testing import CliRunner
from helpers import CORPUS, EXAMPLES
from ingest.cli import main
from ingest.testing import PipelineRun, Runner
from s3server import S3Server

#: A few files of the shared corpus, when present: real PDFs of several producers.
CORPUS_SAMPLE = 6


pytestmark = pytest.mark.usefixtures("aws_environment")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples, a few corpus files when present, a 40-page PDF, and a fake PDF."""
    folder = tmp_path_factory.mktemp("files")
    for pdf in EXAMPLES.glob("*.pdf"):
        shutil.copy(pdf, folder / pdf.name)
    if CORPUS.is_dir():
        for pdf in sorted(CORPUS.glob("*.pdf"))[:CORPUS_SAMPLE]:
            shutil.copy(pdf, folder / pdf.name)
    long_pdf(folder / "long.pdf", 40)
    pdfgen.not_a_pdf(folder / "fake.pdf")
    return folder


def long_pdf(path: Path, pages: int, seed: int = 0) -> Path:
    """A PDF of ``pages`` pages of prose that differs on every page (split into ranges)."""
    words = ["river", "stone", "archive", "ledger", "harvest", "signal", "lantern", "meadow"]
    rng = random.Random(seed)
    texts = [
        "\n".join(" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(4))
        for _ in range(pages)
    ]
    return pdfgen.text_pdf(path, texts)


def same_shape(records: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Records sorted by chunk id, with ``source`` relative to the input."""
    shaped = []
    for record in records:
        record = dict(record)
        record["source"] = Path(str(record["source"]).removeprefix(prefix)).name
        shaped.append(record)
    return sorted(shaped, key=lambda r: str(r["chunk_id"]))


def outcomes(run: PipelineRun) -> dict[str, str]:
    """Each source's outcome, by file name: ``ingested`` or the failure reason."""
    found = {Path(str(s.path)).name: "ingested" for s in run.session.sources}
    for failure in run.result.failures:
        found[Path(str(failure.source)).name] = failure.reason
    return found


def test_a_bucket_gives_the_records_its_files_give_on_disk(
    s3: S3Server, files: Path, ingest_pipeline: Runner
) -> None:
    bucket = s3.new_bucket(files.iterdir())
    remote = ingest_pipeline([f"s3://{bucket}/docs/"], remote=s3.options())
    local = ingest_pipeline([files])
    assert outcomes(remote) == outcomes(local)
    assert remote.result.ingested == local.result.ingested > 3
    assert same_shape(remote.records, f"s3://{bucket}/docs/") == same_shape(
        local.records, str(files)
    )
    (fake,) = [f for f in remote.result.failures if f.reason == "not-a-pdf"]
    assert fake.describe().startswith(f"s3://{bucket}/docs/fake.pdf: not-a-pdf: ")
    assert "\n" not in fake.describe()


def test_patterns_k_and_a_single_key(s3: S3Server, files: Path, ingest_pipeline: Runner) -> None:
    bucket = s3.new_bucket(files.iterdir())
    s3.client().put_object(Bucket=bucket, Key="docs/notes.txt", Body=b"not collected")
    run = ingest_pipeline([f"s3://{bucket}/docs/"], remote=s3.options(), collect_only=True)
    names = sorted(Path(str(s.path)).name for s in run.session.sources)
    assert names == sorted(p.name for p in files.glob("*.pdf"))
    picked = ingest_pipeline(
        [f"s3://{bucket}/docs/"], remote=s3.options(), collect_only=True,
        collect={"select": "guide or long"},
    )  # fmt: skip
    assert sorted(Path(str(s.path)).name for s in picked.session.sources) == [
        "guide.pdf",
        "long.pdf",
    ]
    glob = ingest_pipeline([f"s3://{bucket}/docs/g*.pdf"], remote=s3.options())
    assert [r["source"] for r in glob.records][:1] == [f"s3://{bucket}/docs/guide.pdf"]
    single = ingest_pipeline([f"s3://{bucket}/docs/notes.txt"], remote=s3.options())
    (failure,) = single.result.failures
    assert (failure.source, failure.reason) == (f"s3://{bucket}/docs/notes.txt", "unsupported")


def test_a_rerun_skips_unchanged_objects_without_downloading_them(
    s3: S3Server, files: Path, ingest_pipeline: Runner
) -> None:
    bucket = s3.new_bucket(p for p in files.iterdir() if p.name != "fake.pdf")
    url = f"s3://{bucket}/docs/"
    first = ingest_pipeline([url], remote=s3.options(), store="s3")
    downloaded = s3.requests.object_gets(bucket)
    assert first.result.ingested == len(list(files.glob("*.pdf"))) - 1
    assert len(set(downloaded)) == first.result.ingested
    second = ingest_pipeline([url], remote=s3.options(), store="s3")
    assert s3.requests.object_gets(bucket) == downloaded  # not one GET of an object more
    assert second.result.ingested == 0
    assert second.result.skipped == first.result.ingested
    assert sorted(second.records, key=str) == sorted(first.records, key=str)


def test_a_replaced_object_is_ingested_again_and_a_deleted_one_pruned(
    s3: S3Server, files: Path, ingest_pipeline: Runner, tmp_path: Path
) -> None:
    bucket = s3.new_bucket([files / "guide.pdf", files / "field-notes.pdf", files / "long.pdf"])
    url, client = f"s3://{bucket}/docs/", s3.client()
    first = ingest_pipeline([url], remote=s3.options(), store="s3")
    old_ids = {r["source"]: r["doc_id"] for r in first.records}
    assert first.result.ingested == 3

    long_pdf(tmp_path / "new.pdf", 2, seed=1)
    client.upload_file(str(tmp_path / "new.pdf"), bucket, "docs/guide.pdf")
    client.delete_object(Bucket=bucket, Key="docs/field-notes.pdf")
    before = len(s3.requests.object_gets(bucket))
    kept = ingest_pipeline([url], remote=s3.options(), store="s3")
    assert s3.requests.object_gets(bucket)[before:] == ["docs/guide.pdf"]
    assert kept.result.ingested == 1 and kept.result.gone == 1
    by_source = {r["source"]: r["doc_id"] for r in kept.records}
    guide = f"s3://{bucket}/docs/guide.pdf"
    assert by_source[guide] != old_ids[guide]
    assert old_ids[guide] not in {r["doc_id"] for r in kept.records}  # replaced, not added
    assert f"s3://{bucket}/docs/field-notes.pdf" in by_source  # kept until --prune

    pruned = ingest_pipeline([url], remote=s3.options(), store="s3", prune=True)
    assert pruned.result.removed == 1
    assert sorted({r["source"] for r in pruned.records}) == [guide, f"s3://{bucket}/docs/long.pdf"]


def test_two_keys_with_the_same_bytes_are_one_document(
    s3: S3Server, files: Path, ingest_pipeline: Runner
) -> None:
    bucket = s3.new_bucket([files / "guide.pdf"])
    s3.client().upload_file(str(files / "guide.pdf"), bucket, "docs/zz-copy.pdf")
    url = f"s3://{bucket}/docs/"
    run = ingest_pipeline([url], remote=s3.options(), store="s3")
    assert (run.result.ingested, run.result.skipped) == (1, 1)
    assert {r["source"] for r in run.records} == {f"{url}guide.pdf"}
    before = len(s3.requests.object_gets(bucket))
    again = ingest_pipeline([url], remote=s3.options(), store="s3")
    assert len(s3.requests.object_gets(bucket)) == before  # the twin is known by its stamp
    assert again.result.skipped == 2


def test_a_missing_bucket_is_one_line_and_exit_4(s3: S3Server, tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text(json.dumps({"remote": s3.options()}))
    result = CliRunner().invoke(
        main, ["run", "s3://no-such-bucket/docs/", "-c", str(config), "--sink", "jsonl:o.jsonl"]
    )
    assert result.exit_code == 4, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("ERROR: s3://no-such-bucket/docs/: not found")


def test_ingest_config_masks_the_credentials(s3: S3Server, tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text(json.dumps({"remote": s3.options(secret="do-not-show-me")}))
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(main, ["config", "-c", str(config), *extra])
        assert result.exit_code == 0, result.output
        assert "do-not-show-me" not in result.output
        assert s3.endpoint in result.output  # what is not a secret is shown


@pytest.fixture
def restricted(s3: S3Server) -> Iterator[tuple[str, str, str]]:
    """A bucket, and the key and secret of a user who may list it and read all but one
    of its objects; moto checks credentials and policies while the fixture lasts."""
    import boto3

    iam = boto3.client(
        "iam", endpoint_url=s3.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    bucket = s3.new_bucket([EXAMPLES / "guide.pdf", EXAMPLES / "field-notes.pdf"])
    user = f"reader-{bucket}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/docs/field-notes.pdf",
            },
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=user)["AccessKey"]
    _set_auth(s3, "0")
    try:
        yield bucket, created["AccessKeyId"], created["SecretAccessKey"]
    finally:
        _set_auth(s3, "inf")


def _set_auth(s3: S3Server, after: str) -> None:
    """moto checks credentials after ``after`` more requests (``inf``: never)."""
    import urllib.request

    request = urllib.request.Request(
        f"{s3.endpoint}/moto-api/reset-auth",
        data=after.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would not reach moto
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_access_denied_fails_the_object_alone_or_the_listing(
    s3: S3Server, restricted: tuple[str, str, str], ingest_pipeline: Runner, tmp_path: Path
) -> None:
    bucket, key, secret = restricted
    url = f"s3://{bucket}/docs/"
    run = ingest_pipeline([url], remote=s3.options(key=key, secret=secret))
    assert run.result.ingested == 1
    (failure,) = run.result.failures
    assert failure.source == f"{url}field-notes.pdf"
    assert failure.reason == "unreadable"
    assert "access denied" in failure.message and "\n" not in failure.describe()

    config = tmp_path / "ingest.yaml"
    config.write_text(json.dumps({"remote": s3.options(key="AKIAUNKNOWN", secret="wrong")}))
    result = CliRunner().invoke(
        main, ["run", url, "-c", str(config), "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"]
    )
    assert result.exit_code == 4, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith(f"ERROR: {url}: access denied")


def test_a_store_that_stops_mid_run_fails_the_documents_it_did_not_serve(
    files: Path, ingest_pipeline: Runner
) -> None:
    server = S3Server()
    try:
        bucket = server.new_bucket(
            [p for p in sorted(files.glob("*.pdf")) if p.name != "fake.pdf"][:4]
        )
        served: list[str] = []

        def stop_after_first(method: str, path: str) -> None:
            if method == "GET" and path.startswith(f"/{bucket}/docs/"):
                if served:
                    server.stop_soon()
                served.append(path)

        server.requests.hook = stop_after_first
        run = ingest_pipeline([f"s3://{bucket}/docs/"], remote=server.options())
    finally:
        server.stop()
    assert run.result.exit_code == 1
    assert run.result.ingested + run.result.failed == 4
    assert run.result.ingested >= 1 and run.result.failed >= 2
    for failure in run.result.failures:
        assert str(failure.source).startswith(f"s3://{bucket}/docs/")
        assert failure.reason == "unreadable"
        assert "read failed 2 times (remote.retries 1)" in failure.message
        assert "\n" not in failure.describe()
