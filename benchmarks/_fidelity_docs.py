"""Generated PDFs with known text, one per layout feature, for the fidelity benchmark.

Every document is drawn line by line with fpdf2 at absolute positions, so the order of the
content stream is chosen here and differs from the reading order where a feature is about
order (columns drawn right to left, footnotes before the body). Each :class:`Doc` carries
its ground truth: the text of each page in reading order, without the running headers and
footers (the pipeline is meant to remove them) and with footnotes after the body.

Fonts: DejaVu Sans (Debian ``fonts-dejavu-core``) for Latin, Hebrew and Arabic, Droid Sans
Fallback (``fonts-droid-fallback``) for Chinese; a feature whose font is missing is skipped
and says so. Right-to-left text is shaped by HarfBuzz (``uharfbuzz``, in the test extra).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fpdf import FPDF


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/local/share/fonts"))
LATIN_FONT = "dejavu/DejaVuSans.ttf"
CJK_FONT = "droid/DroidSansFallbackFull.ttf"

WORDS = _split(
    "river stone harbour lantern meadow copper signal window garden pocket marble "
    "thunder violet anchor basket candle ladder mirror needle orchard pepper quarry "
    "saddle timber velvet walnut yellow zephyr bridge castle dragon empire falcon "
    "glacier hollow island jungle kettle lemon magnet nectar oyster parrot quiver "
    "rocket silver tunnel umbrella valley whistle canyon desert forest hammer "
    "journey kingdom legend mountain network ocean planet rhythm shadow treasure "
    "universe voyage wonder beacon cobalt dynamo ember fossil granite horizon "
    "ivory jasmine kernel lagoon mosaic nebula orbit prism quartz radius summit "
    "tempest utopia vertex willow zenith archive ballad cipher domain engine"
)
LONG_WORDS = _split(
    "information international organisation communication development "
    "responsibility understanding architecture environmental contribution "
    "representative administration conversation consideration establishment"
)
LIGATURE_WORDS = ("\ufb01nd", "\ufb02ow", "o\ufb03ce", "e\ufb00ort", "ba\ufb04e", "\ufb01eld")
HEBREW = _split("שלום עולם ספר מים אור לחם בית ילד עץ שמש ירח כוכב דרך עיר שער גן")
# Lam-alef (in سلام) is one glyph with two characters, which PDFium gives reversed.
ARABIC = _split("كتاب قلم بيت شمس قمر نجم بحر نهر جبل مدينة طريق باب شجرة زهرة سلام")
CHINESE = "这是一个用于检查文本提取的中文段落我们在这里写下许多不同的汉字以便测试"

PAGE_W, PAGE_H = 210.0, 297.0  # A4, millimetres (fpdf2's default unit)
MARGIN = 20.0


def font_path(name: str) -> Path | None:
    """The installed font file ``name`` (relative to a system font folder), or ``None``."""
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass
class Doc:
    """A generated document: its file and the text of each page in reading order."""

    feature: str
    path: Path
    pages: list[str] = field(default_factory=list)


class _Writer:
    """An fpdf2 document with DejaVu (and Droid for Chinese) and a word-wrapping helper."""

    def __init__(self) -> None:
        self.pdf = FPDF(unit="mm", format="A4")
        self.pdf.set_auto_page_break(False)
        latin = font_path(LATIN_FONT)
        if latin is None:
            raise FileNotFoundError(f"font {LATIN_FONT} (Debian: fonts-dejavu-core)")
        self.pdf.add_font("latin", fname=str(latin))
        cjk = font_path(CJK_FONT)
        if cjk is not None:
            self.pdf.add_font("cjk", fname=str(cjk))

    def wrap(self, words: list[str], width: float, size: float) -> list[str]:
        self.pdf.set_font("latin", size=size)
        lines: list[str] = []
        current: list[str] = []
        for word in words:
            trial = " ".join([*current, word])
            if current and self.pdf.get_string_width(trial) > width:
                lines.append(" ".join(current))
                current = [word]
            else:
                current.append(word)
        if current:
            lines.append(" ".join(current))
        return lines

    def text(self, x: float, y: float, line: str, size: float = 10.0, font: str = "latin") -> None:
        self.pdf.set_font(font, size=size)
        self.pdf.text(x, y, line)


def _sentences(rng: random.Random, count: int) -> list[str]:
    words: list[str] = []
    for _ in range(count):
        sentence = [rng.choice(WORDS) for _ in range(rng.randint(6, 12))]
        sentence[0] = sentence[0].capitalize()
        words.extend(sentence)
        words[-1] += "."
    return words


def _column_lines(w: _Writer, rng: random.Random, width: float, lines: int) -> list[str]:
    out: list[str] = []
    while len(out) < lines:
        out.extend(w.wrap(_sentences(rng, 4), width, 10))
    return out[:lines]


def one_column(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("one column", folder / "one_column.pdf")
    for _ in range(3):
        w.pdf.add_page()
        lines = _column_lines(w, rng, PAGE_W - 2 * MARGIN, 45)
        for number, line in enumerate(lines):
            w.text(MARGIN, MARGIN + 5 * number, line)
        doc.pages.append("\n".join(lines))
    w.pdf.output(str(doc.path))
    return doc


def _columns(folder: Path, rng: random.Random, count: int, name: str, order: list[int]) -> Doc:
    w, doc = _Writer(), Doc(name, folder / f"{name.replace(' ', '_')}.pdf")
    gutter = 8.0
    width = (PAGE_W - 2 * MARGIN - (count - 1) * gutter) / count
    for page in range(2):
        w.pdf.add_page()
        top = MARGIN
        title = ""
        if page == 0:
            title = " ".join(rng.choice(WORDS).capitalize() for _ in range(6))
            top += 15
        columns = [_column_lines(w, rng, width, 48) for _ in range(count)]
        # The content stream draws the columns out of order; the title comes last.
        for index in order:
            x = MARGIN + index * (width + gutter)
            for number, line in enumerate(columns[index]):
                w.text(x, top + 5 * number, line)
        if title:
            w.text(MARGIN, MARGIN + 4, title, size=14)
        doc.pages.append("\n".join([title, *(line for c in columns for line in c)]).strip())
    w.pdf.output(str(doc.path))
    return doc


def two_columns(folder: Path, rng: random.Random) -> Doc:
    return _columns(folder, rng, 2, "two columns", [1, 0])


def three_columns(folder: Path, rng: random.Random) -> Doc:
    return _columns(folder, rng, 3, "three columns", [2, 0, 1])


def footnotes(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("footnotes", folder / "footnotes.pdf")
    for _ in range(2):
        w.pdf.add_page()
        body = _column_lines(w, rng, PAGE_W - 2 * MARGIN, 38)
        notes: list[str] = []
        for number in range(1, 4):
            notes.extend(w.wrap([str(number), *_sentences(rng, 2)], PAGE_W - 2 * MARGIN, 7))
        # Footnotes first in the content stream, as some typesetters write them.
        for number, line in enumerate(notes):
            w.text(MARGIN, PAGE_H - MARGIN - 3.5 * (len(notes) - number), line, size=7)
        for number, line in enumerate(body):
            w.text(MARGIN, MARGIN + 5 * number, line)
        doc.pages.append("\n".join(body + notes))
    w.pdf.output(str(doc.path))
    return doc


def _with_running(
    folder: Path, rng: random.Random, name: str, pages: int,
    header: Callable[[int], tuple[str, str]], footer: Callable[[int], tuple[str, str]],
) -> Doc:  # fmt: skip
    w, doc = _Writer(), Doc(name, folder / f"{name.replace(' ', '_')}.pdf")
    for page in range(1, pages + 1):
        w.pdf.add_page()
        for (text, side), y in ((header(page), 12.0), (footer(page), PAGE_H - 10)):
            w.pdf.set_font("latin", size=8)
            x = PAGE_W - MARGIN - w.pdf.get_string_width(text) if side == "right" else MARGIN
            if side == "center":
                x = (PAGE_W - w.pdf.get_string_width(text)) / 2
            w.text(x, y, text, size=8)
        body = _column_lines(w, rng, PAGE_W - 2 * MARGIN, 40)
        for number, line in enumerate(body):
            w.text(MARGIN, MARGIN + 5 * number, line)
        doc.pages.append("\n".join(body))
    w.pdf.output(str(doc.path))
    return doc


def _roman(number: int) -> str:
    out = ""
    for value, letters in ((10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while number >= value:
            out, number = out + letters, number - value
    return out


def running_same(folder: Path, rng: random.Random) -> Doc:
    return _with_running(
        folder, rng, "running header same", 6,
        lambda n: ("Journal of Synthetic Studies, Volume 12", "left"),
        lambda n: (f"Page {n} of 6", "center"),
    )  # fmt: skip


def running_alternating(folder: Path, rng: random.Random) -> Doc:
    return _with_running(
        folder, rng, "running header alternating", 7,
        lambda n: (
            (f"Synthetic Studies: the second chapter {n}", "right")
            if n % 2 else (f"{n} A. Author and B. Writer", "left")
        ),
        lambda n: (f"- {n} -", "center") if n % 2 else (_roman(n), "center"),
    )  # fmt: skip


def hyphenation(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("hyphenated line ends", folder / "hyphenation.pdf")
    width = PAGE_W - 2 * MARGIN
    for _ in range(2):
        w.pdf.add_page()
        lines: list[str] = []
        truth: list[str] = []
        while len(lines) < 40:
            line = w.wrap(_sentences(rng, 2), width - 40, 10)[0]
            long, following = rng.choice(LONG_WORDS), rng.choice(WORDS)
            cut = len(long) // 2
            lines += [f"{line} {long[:cut]}-", f"{long[cut:]} {following}"]
            truth += [f"{line} {long}", following]
        for number, line in enumerate(lines):
            w.text(MARGIN, MARGIN + 5 * number, line)
        doc.pages.append("\n".join(truth))
    w.pdf.output(str(doc.path))
    return doc


def ligatures(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("ligatures", folder / "ligatures.pdf")
    w.pdf.add_page()
    lines = []
    for _ in range(30):
        words = [rng.choice(WORDS) for _ in range(6)]
        words += [rng.choice(LIGATURE_WORDS) for _ in range(3)]
        rng.shuffle(words)
        lines.append(" ".join(words))
    for number, line in enumerate(lines):
        w.text(MARGIN, MARGIN + 5 * number, line)
    doc.pages.append("\n".join(lines))
    w.pdf.output(str(doc.path))
    return doc


def cjk(folder: Path, rng: random.Random) -> Doc | None:
    if font_path(CJK_FONT) is None:
        return None
    w, doc = _Writer(), Doc("CJK", folder / "cjk.pdf")
    for _ in range(2):
        w.pdf.add_page()
        lines = ["".join(rng.choice(CHINESE) for _ in range(30)) for _ in range(35)]
        for number, line in enumerate(lines):
            w.text(MARGIN, MARGIN + 6 * number, line, font="cjk")
        doc.pages.append("\n".join(lines))
    w.pdf.output(str(doc.path))
    return doc


def right_to_left(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("right-to-left", folder / "rtl.pdf")
    for script, words, code in (("hebr", HEBREW, "heb"), ("arab", ARABIC, "ara")):
        w.pdf.add_page()
        w.pdf.set_text_shaping(
            use_shaping_engine=True, direction="rtl", script=script, language=code
        )
        lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(30)]
        w.pdf.set_font("latin", size=11)
        for number, line in enumerate(lines):
            # cell() shapes and reorders the line (text() would draw it in logical order).
            w.pdf.set_xy(MARGIN, MARGIN + 6 * number)
            w.pdf.cell(w=PAGE_W - 2 * MARGIN, text=line, align="R")
        doc.pages.append("\n".join(lines))
    w.pdf.output(str(doc.path))
    return doc


def rotated(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("rotated pages", folder / "rotated.pdf")
    for _ in range(2):
        w.pdf.add_page()
        # Landscape text on a portrait page: every line runs up the page.
        lines = _column_lines(w, rng, PAGE_H - 2 * MARGIN, 30)
        for number, line in enumerate(lines):
            x, y = MARGIN + 5 * (number + 1), PAGE_H - MARGIN
            with w.pdf.rotation(90, x, y):
                w.text(x, y, line)
        doc.pages.append("\n".join(lines))
    w.pdf.output(str(doc.path))
    return doc


def repeated(folder: Path, rng: random.Random) -> Doc:
    w, doc = _Writer(), Doc("repeated pages", folder / "repeated.pdf")
    lines = _column_lines(w, rng, PAGE_W - 2 * MARGIN, 12)
    for _ in range(5):
        w.pdf.add_page()
        for number, line in enumerate(lines):
            w.text(MARGIN, MARGIN + 5 * number, line)
        doc.pages.append("\n".join(lines))
    w.pdf.output(str(doc.path))
    return doc


FEATURES: tuple[Callable[[Path, random.Random], Doc | None], ...] = (
    one_column, two_columns, three_columns, footnotes, running_same, running_alternating,
    hyphenation, ligatures, cjk, right_to_left, rotated, repeated,
)  # fmt: skip


def generate(folder: Path, *, seed: int = 15) -> tuple[list[Doc], list[str]]:
    """Write every feature's document into ``folder``.

    :returns: the documents, and the names of the features skipped for a missing font.
    """
    folder.mkdir(parents=True, exist_ok=True)
    docs: list[Doc] = []
    skipped: list[str] = []
    for make in FEATURES:
        made = make(folder, random.Random(f"{seed}-{make.__name__}"))
        if made is None:
            skipped.append(make.__name__)
        else:
            docs.append(made)
    return docs, skipped
