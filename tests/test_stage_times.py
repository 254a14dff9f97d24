"""Seconds per stage of a run: in RunResult.stage_seconds and in ``ingest run -v``."""

from __future__ import annotations

from pathlib import Path

import ingest
import pytest
from click.testing import CliRunner
from helpers import EXAMPLES
from hypothesis import given
from hypothesis import strategies as st
from ingest.cli import main
from ingest.workers import StageTimes
from ingest.workers.timing import describe_stages

TRANSFORMS = ["normalize", "dehyphenate", "strip_headers", "chunk", "dedup"]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("guide.pdf", "field-notes.pdf"):
        (folder / name).write_bytes((EXAMPLES / name).read_bytes())
    return folder


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_counts_the_seconds_of_every_stage(
    docs: Path, tmp_path: Path, workers: int
) -> None:
    result = ingest.run(
        [docs], run={"workers": workers}, sinks=[f"jsonl:{tmp_path / 'out.jsonl'}"]
    )
    assert result.ingested == 2
    stages = result.stage_seconds
    expected = {"extract:pdfium", "driver: collect", "driver: sinks", "driver: cache"}
    expected |= {f"transform:{step}" for step in TRANSFORMS}
    if workers:
        expected |= {"worker: read tasks", "driver: send tasks", "driver: read results"}
    assert expected <= set(stages)
    assert all(seconds >= 0 for seconds in stages.values())
    assert stages["extract:pdfium"] > 0
    # Largest first, as -v shows them.
    assert list(stages.values()) == sorted(stages.values(), reverse=True)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_verbose_output_shows_the_table(docs: Path, tmp_path: Path, workers: str) -> None:
    args = ["run", str(docs), "--workers", workers, "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"]
    quiet = CliRunner().invoke(main, args)
    assert quiet.exit_code == 0, quiet.output
    assert "time by stage" not in quiet.output
    verbose = CliRunner().invoke(main, [*args, "-v", "--force"])
    assert verbose.exit_code == 0, verbose.output
    assert "time by stage, summed over the processes" in verbose.output
    table = verbose.output.split("time by stage", 1)[1]
    for stage in ["extract:pdfium", "transform:chunk", "driver: collect"]:
        assert stage in table


def test_a_failing_step_still_counts(tmp_path: Path) -> None:
    """A stage that raises is counted too: its time was spent."""
    times = StageTimes()
    with pytest.raises(ValueError), times.measure("broken"):
        raise ValueError("boom")
    assert set(times.totals()) == {"broken"}


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 10)), max_size=20))
def test_take_returns_what_was_added_since_the_last_take(adds: list[tuple[str, float]]) -> None:
    times = StageTimes()
    expected: dict[str, float] = {}
    for stage, seconds in adds:
        times.add(stage, seconds)
        expected[stage] = expected.get(stage, 0.0) + seconds
    assert times.take() == pytest.approx(expected)
    assert times.take() == {}
    merged = StageTimes()
    merged.merge(expected)
    merged.merge(expected)
    assert merged.totals() == pytest.approx({k: 2 * v for k, v in expected.items()})


def test_the_table_is_largest_first_with_shares() -> None:
    lines = describe_stages({"small": 1.0, "large": 3.0}).splitlines()
    assert "large" in lines[0] and "75.0%" in lines[0]
    assert "small" in lines[1] and "25.0%" in lines[1]
