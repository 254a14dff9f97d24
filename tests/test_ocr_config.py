"""The ocr plugin's settings, its start-up errors and its engine hook.

The error paths run for real: a missing extra is a subprocess whose imports of the extra's
modules are refused by a meta-path finder; a missing tesseract is a PATH without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MISSING_OCR

pytest.importorskip("rapidocr_onnxruntime", reason=MISSING_OCR)

from hypothesis import given
from hypothesis import strategies as st
from ingest.api import prepare
from ingest.errors import ConfigError, PluginError
from ingest.model import Page
from ingest_plugins.ocr.detect import (
    clearly_readable,
    garbage_count,
    may_be_sparse,
    reason_from_text,
)
from ingest_plugins.ocr.settings import OcrSettings

PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="the tesseract program is not installed (apt-get install tesseract-ocr)",
)

# Refuses the imports of the ocr extra, as if it were not installed.
BLOCKER = """\
import sys

class _NoOcrExtra:
    BLOCKED = {"rapidocr_onnxruntime", "pytesseract"}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoOcrExtra())
"""


def ocr_settings(tmp_path: Path, *overrides: str, **kwargs: object) -> OcrSettings:
    prepared = prepare(plugins=["ocr"], cwd=tmp_path, overrides=overrides, **kwargs)  # type: ignore[arg-type]  # keyword pass-through
    section: OcrSettings = prepared.loaded.settings.ocr  # type: ignore[attr-defined]  # plugin section
    return section


def test_defaults(tmp_path: Path) -> None:
    s = ocr_settings(tmp_path, environ={})
    assert (s.mode, s.engine, s.languages, s.dpi, s.page_timeout) == (
        "auto",
        "auto",
        ["eng"],
        300,
        60.0,
    )


def test_the_section_is_set_from_yaml_env_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("ocr:\n  dpi: 200\n  languages: [en]\n")
    assert ocr_settings(tmp_path, environ={}).dpi == 200
    assert ocr_settings(tmp_path, environ={}).languages == ["eng"]
    from_env = ocr_settings(
        tmp_path, environ={"INGEST_OCR__DPI": "250", "INGEST_OCR__LANGUAGES": "en,eng"}
    )
    assert (from_env.dpi, from_env.languages) == (250, ["eng"])
    s = ocr_settings(tmp_path, "ocr.dpi=150", "ocr.mode=never", environ={"INGEST_OCR__DPI": "250"})
    assert (s.dpi, s.mode) == (150, "never")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ocr.dpi=5000", r"ocr\.dpi: Input should be less than or equal to 600"),
        ("ocr.dpi=10", r"ocr\.dpi: Input should be greater than or equal to 72"),
        ("ocr.mode=sometimes", r"ocr\.mode: Input should be 'auto', 'always' or 'never'"),
        ("ocr.languages=english", r"ocr\.languages: .*'english' is not a language code"),
        ("ocr.languages=[]", r"ocr\.languages: .*at least one language"),
        ("ocr.page_timeout=0", r"ocr\.page_timeout: Input should be greater than 0"),
        ("ocr.engine=no way", r"ocr\.engine: .*is not an engine name"),
    ],
)
def test_invalid_values_name_the_field(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ocr_settings(tmp_path, override, environ={})


def test_languages_accept_aliases_and_engine_separators() -> None:
    assert OcrSettings(languages="en+de").languages == ["eng", "deu"]  # type: ignore[arg-type]  # a string is split
    assert OcrSettings(languages=["chi_sim", "zh", "eng"]).languages == ["chi_sim", "eng"]


def test_rapidocr_refuses_languages_its_models_do_not_read(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"ocr\.languages: the rapidocr engine reads only"):
        ocr_settings(tmp_path, "ocr.engine=rapidocr", "ocr.languages=deu", environ={})


@needs_tesseract
def test_tesseract_without_the_language_data_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"ocr\.languages: tesseract has no data for zzz"):
        ocr_settings(tmp_path, "ocr.engine=tesseract", "ocr.languages=zzz", environ={})


def test_tesseract_asked_for_but_missing_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"ocr.tesseract_cmd='/nowhere/tesseract'.*not found"):
        ocr_settings(
            tmp_path, "ocr.engine=tesseract", "ocr.tesseract_cmd=/nowhere/tesseract", environ={}
        )


def test_unknown_engine_names_the_setting_and_suggests(tmp_path: Path) -> None:
    expected = r"ocr\.engine: unknown OCR engine 'tesserct'; did you mean 'tesseract'\?"
    with pytest.raises(PluginError, match=expected):
        ocr_settings(tmp_path, "ocr.engine=tesserct", environ={})


def _ingest(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "in").mkdir(exist_ok=True)
    command = [sys.executable, "-c", "from ingest.cli import main; main()", "run", "in", *args]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    return {**env, **extra}


@pytest.mark.slow  # the real ingest command, twice, in subprocesses
def test_without_the_extra_the_plugin_fails_at_start_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    done = _ingest(tmp_path, "--plugin", "ocr", env=_env(PYTHONPATH=str(blocker)))
    assert done.returncode == 4, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'ingest[ocr]'" in lines[0]
    assert "rapidocr_onnxruntime" in lines[0] and "plugin 'ocr'" in lines[0]
    # Without --plugin ocr the same interpreter runs fine: only the plugin needs the extra.
    assert _ingest(tmp_path, env=_env(PYTHONPATH=str(blocker))).returncode == 5


@pytest.mark.slow  # the real ingest command, twice, in subprocesses
def test_engine_tesseract_without_the_program_on_path_fails_at_start(tmp_path: Path) -> None:
    path = os.pathsep.join(str(Path(p)) for p in {Path(sys.executable).parent})
    done = _ingest(tmp_path, "-p", "ocr", "-o", "ocr.engine=tesseract", env=_env(PATH=path))
    assert done.returncode == 4, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "ocr.engine is 'tesseract' but the tesseract program" in line
    assert "apt-get install tesseract-ocr" in line
    # auto falls back to RapidOCR instead: the run starts (and finds nothing to ingest).
    assert _ingest(tmp_path, "-p", "ocr", env=_env(PATH=path)).returncode == 5


@pytest.mark.slow  # real OCR of a page
@needs_tesseract
def test_a_third_party_engine_is_made_once_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.model import Document, Source
    from ingest.workers.pipeline import process_source
    from ocrgen import KNOWN_TEXT, Scan, cer, scanned_pdf

    monkeypatch.syspath_prepend(str(PLUGINS_DIR))
    engine = pytest.importorskip("ocr_cli_engine")
    pdf = scanned_pdf(tmp_path / "two.pdf", [Scan(), Scan()])
    prepared = prepare(
        plugins=["ocr"],
        cwd=tmp_path,
        environ={},
        cli={"run.workers": 0, "transforms": []},
        overrides=["ocr.engine=ocr_cli_engine", "ocr.page_timeout=45"],
    )
    outcome = process_source(prepared.manager, prepared.loaded.settings, Source.from_path(pdf))
    assert isinstance(outcome, Document), outcome
    assert [p.provenance["ocr"]["engine"] for p in outcome.pages] == ["cli-tesseract"] * 2
    assert all(cer(p.text, KNOWN_TEXT) < 0.05 for p in outcome.pages)
    assert engine.CREATED == ["cli-tesseract"]


# -- the garbage detector -------------------------------------------------------------------

_WORDS = st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=12)
_GARBAGE = st.one_of(
    st.integers(0, 65535).map(lambda n: f"(cid:{n})"),
    st.sampled_from(["\ufffd", "\ue000", "\uf8ff", "\x01"]),
)


def _page(text: str) -> Page:
    return Page(number=1, text=text, extractor="pdfium")


@given(st.lists(_WORDS, min_size=1, max_size=40), st.lists(_GARBAGE, max_size=40))
def test_garbage_is_counted_per_glyph_and_decides_the_reason(
    words: list[str], garbage: list[str]
) -> None:
    text = " ".join(words + garbage)
    assert garbage_count(text) == len(garbage)
    usable = sum(len(w) for w in words)
    reason = reason_from_text(_page(text), min_chars=16)
    if usable < 16:
        assert reason in {"no-text", "garbage"}
        assert (reason == "garbage") == bool(garbage)
    elif len(garbage) > 0.2 * (len(garbage) + usable):
        assert reason == "garbage"
    else:
        assert reason is None


@given(st.lists(_WORDS, min_size=1, max_size=40), st.lists(_GARBAGE, min_size=1, max_size=20))
def test_more_garbage_never_makes_a_page_readable(words: list[str], garbage: list[str]) -> None:
    text = " ".join(words)
    before = reason_from_text(_page(text), min_chars=16)
    after = reason_from_text(_page(text + " " + " ".join(garbage)), min_chars=16)
    assert before is None or after is not None


_ANY_TEXT = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.text(st.characters(codec="ascii"), max_size=40),
        st.sampled_from(["(cid:3)", "\ufffd", "\ue000", "\x01", "\n", " ", "word " * 20]),
    ),
    max_size=40,
).map("".join)


@given(_ANY_TEXT, st.booleans(), st.sampled_from([0.0, 0.5, 2.0]))
def test_the_fast_path_never_clears_a_page_the_rules_would_ocr(
    text: str, flagged: bool, density: float
) -> None:
    """clearly_readable skips the full check for speed; it must agree with the full rules."""
    page = Page(number=1, text=text, extractor="pdfium", needs_ocr=flagged)
    if clearly_readable(page, min_chars=16, letters_per_sq_inch=density):
        assert reason_from_text(page, min_chars=16) is None
        assert not may_be_sparse(page, density)


@pytest.mark.parametrize(
    ("overrides", "per_page"),
    [
        (("ocr.engine=rapidocr",), 2 + 30.0),
        (("ocr.engine=rapidocr", "ocr.dpi=150"), 2 + 7.5),
        (("ocr.engine=rapidocr", "ocr.page_timeout=5"), 2 + 5.0),
        (("ocr.mode=never",), 2.0),
    ],
)
def test_ocr_pages_get_room_in_the_worker_deadlines(
    tmp_path: Path, overrides: tuple[str, ...], per_page: float
) -> None:
    """Without it a scanned document of 30 pages is killed as hung at the default limits."""
    from ingest.workers.dispatch import Limits

    prepared = prepare(plugins=["ocr"], cwd=tmp_path, overrides=list(overrides))
    limits = Limits.from_settings(
        prepared.loaded.settings, prepared.manager, workers=2, max_memory=None
    )
    assert limits.timeout_per_page == pytest.approx(per_page)
