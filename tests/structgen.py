"""Generate PDFs with known structure, with fpdf2: headings, lists, tables, two columns.

:func:`structured_pdf` writes one document from a seed and returns its :class:`Truth`: the
headings with their levels, the list items, and the tables as grids of cell text. The
layout mixes what real documents do:

* a title (level 1, about twice the body size, bold), unnumbered and numbered sections
  (level 2, about 1.4 times, bold: ``Abstract``, ``2 Methods``), numbered subsections
  (level 3, about 1.2 times, bold: ``2.1 Data``), and unnumbered sub-subsections (level 4,
  bold at the body's size); one section title in each document is long enough to wrap onto
  a second line;
* paragraphs of 10 to 11 pt Helvetica or Times (chosen by the seed), justified or ragged;
* bulleted lists (``•``, hanging indent or not), numbered lists (``1.``), and nested items
  (an en dash, indented), items long enough to wrap;
* ruled tables (every cell framed), tables without any rule, and tables with only three
  horizontal rules (top, below the header, bottom);
* with ``columns=2``, everything flows in two columns per page;
* with ``outline=True``, the headings are also bookmarks;
* a running header and a page number on every page, which are not content.

Words come from a fixed vocabulary in a seeded order, so a seed always gives the same file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from fpdf import FPDF

__all__ = ["Truth", "TruthTable", "structured_pdf"]

LINE = 5.2  # mm per body line
#: Heading sizes as multiples of the body size, by level.
HEADING_SCALE = {1: 1.9, 2: 1.4, 3: 1.2, 4: 1.0}

_WORDS = (
    "analysis", "method", "result", "sample", "measure", "river", "valley", "system",
    "model", "signal", "energy", "process", "surface", "pattern", "network", "field",
    "current", "growth", "region", "factor", "report", "study", "average", "period",
    "season", "station", "record", "survey", "county", "budget", "office", "market",
    "service", "transport", "harbour", "weather", "climate", "rainfall", "soil", "forest",
    "coast", "border", "island", "bridge", "quality", "supply", "demand", "income",
    "capital", "labour", "policy", "review", "estimate", "trend", "figure",
)  # fmt: skip
_TOPICS = (
    "Methods", "Results", "Discussion", "Background", "Data Sources", "Sampling Design",
    "Regional Trends", "Limitations", "Field Work", "Calibration", "Error Budget",
    "Seasonal Effects", "Model Fitting", "Validation", "Costs", "Outlook",
)  # fmt: skip
_CELL_WORDS = (
    "North", "South", "East", "West", "Alpha", "Beta", "Gamma", "Delta", "Harbour",
    "Valley", "Ridge", "Plain", "Coast", "Delta", "Upper", "Lower", "Central",
)  # fmt: skip


@dataclass
class TruthTable:
    """A table as written: page number, rows of cell text, and how it was ruled."""

    page: int
    rows: list[list[str]]
    ruled: str  # "grid", "none" or "three-rules"


@dataclass
class Truth:
    """What a generated document holds."""

    headings: list[tuple[str, int]] = field(default_factory=list)
    list_items: list[str] = field(default_factory=list)
    tables: list[TruthTable] = field(default_factory=list)


class _Doc(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", "", 8)
        self.set_xy(self.l_margin, 8)
        self.cell(0, 4, "Structure benchmark - generated document")

    def footer(self) -> None:
        self.set_font("Helvetica", "", 8)
        self.set_xy(self.l_margin, self.h - 12)
        self.cell(0, 4, f"Page {self.page_no()}", align="C")


class _Writer:
    """Flows blocks down columns and pages, measuring before drawing."""

    def __init__(self, pdf: _Doc, columns: int, rng: random.Random, outline: bool) -> None:
        self.pdf = pdf
        self.font = rng.choice(["Helvetica", "Times"])
        self.body = rng.choice([10.0, 10.5, 11.0])
        self.columns = columns
        self.rng = rng
        self.outline = outline
        self.truth = Truth()
        self.margin = 18.0
        self.gutter = 10.0
        self.top = 20.0
        self.bottom = pdf.h - 20.0
        self.width = (pdf.w - 2 * self.margin - (columns - 1) * self.gutter) / columns
        self.column = 0
        self.y = self.top
        pdf.add_page()

    # -- flow --------------------------------------------------------------------------

    @property
    def x(self) -> float:
        return self.margin + self.column * (self.width + self.gutter)

    def room(self, height: float) -> None:
        if self.y + height <= self.bottom:
            return
        if self.column + 1 < self.columns:
            self.column += 1
        else:
            self.pdf.add_page()
            self.column = 0
        self.y = self.top

    def lines(self, text: str, width: float, style: str, size: float) -> int:
        self.pdf.set_font(self.font, style, size)
        return len(self.pdf.multi_cell(width, LINE, text, dry_run=True, output="LINES"))

    # -- blocks ------------------------------------------------------------------------

    def heading(self, text: str, level: int) -> None:
        size = round(self.body * HEADING_SCALE[level], 1)
        height = size * 0.45
        count = self.lines(text, self.width, "B", size)
        self.room(count * height + 2 * LINE + 4)
        self.y += 2.5 if level > 1 else 0
        if self.outline:
            self.pdf.set_y(self.y)
            self.pdf.start_section(text, level=level - 1)
        self.pdf.set_font(self.font, "B", size)
        self.pdf.set_xy(self.x, self.y)
        self.pdf.multi_cell(self.width, height, text, align="L")
        self.y += count * height + 1.5
        self.truth.headings.append((text, level))

    def paragraph(self, words: int) -> None:
        text = self.sentence(words)
        count = self.lines(text, self.width, "", self.body)
        self.room(count * LINE)
        self.pdf.set_font(self.font, "", self.body)
        self.pdf.set_xy(self.x, self.y)
        self.pdf.multi_cell(self.width, LINE, text, align=self.rng.choice(["J", "L"]))
        self.y += count * LINE + 2.5

    def items(self, kind: str, count: int) -> None:
        hanging = self.rng.random() < 0.7
        for index in range(count):
            nested = kind == "bullet" and index in (1, 2) and count > 3
            number = index + 1
            marker = "\u2013" if nested else ("\u2022" if kind == "bullet" else f"{number}.")
            text = self.sentence(self.rng.choice([4, 7, 18]), end="")
            indent = 6.0 if nested else 0.0
            self.item(marker, text, indent, hanging)
        self.y += 2.0

    def item(self, marker: str, text: str, indent: float, hanging: bool) -> None:
        pdf = self.pdf
        if hanging:
            width = self.width - indent - 5.0
            count = self.lines(text, width, "", self.body)
            self.room(count * LINE)
            x = self.x + indent
            pdf.set_font(self.font, "", self.body)
            pdf.set_xy(x, self.y)
            pdf.cell(5.0, LINE, marker)
            pdf.set_xy(x + 5.0, self.y)
            pdf.multi_cell(width, LINE, text, align="L")
        else:
            full = f"{marker} {text}"
            count = self.lines(full, self.width - indent, "", self.body)
            self.room(count * LINE)
            x = self.x + indent
            pdf.set_font(self.font, "", self.body)
            pdf.set_xy(x, self.y)
            pdf.multi_cell(self.width - indent, LINE, full, align="L")
        self.y += count * LINE
        self.truth.list_items.append(text)

    def table(self, ruled: str) -> None:
        cols = self.rng.randint(2, 3 if self.columns > 1 else 5)
        rows = self.rng.randint(3, 6)
        header = [self.rng.choice(_TOPICS).split()[0] + f" {c + 1}" for c in range(cols)]
        grid = [header]
        for r in range(rows):
            grid.append([self.cell_text(r, c) for c in range(cols)])
        height = 6.0
        self.room((rows + 1) * height + 6)
        width = min(self.width, cols * 32.0)
        column = width / cols
        pdf = self.pdf
        top = self.y
        for r, row in enumerate(grid):
            pdf.set_font(self.font, "B" if r == 0 else "", self.body - 1)
            for c, text in enumerate(row):
                pdf.set_xy(self.x + c * column, top + r * height)
                pdf.cell(column, height, text, border=1 if ruled == "grid" else 0)
        if ruled == "three-rules":
            pdf.set_line_width(0.3)
            for y in (top, top + height, top + len(grid) * height):
                pdf.line(self.x, y, self.x + width, y)
        self.truth.tables.append(TruthTable(pdf.page_no(), grid, ruled))
        self.y = top + len(grid) * height + 5.0

    # -- text --------------------------------------------------------------------------

    def sentence(self, words: int, end: str = ".") -> str:
        chosen = [self.rng.choice(_WORDS) for _ in range(words)]
        return (" ".join(chosen).capitalize() + end) if chosen else ""

    def cell_text(self, row: int, col: int) -> str:
        if col == 0:
            return f"{self.rng.choice(_CELL_WORDS)} {row + 1}"
        return f"{self.rng.randint(1, 999)}.{self.rng.randint(0, 9)}"


def structured_pdf(
    path: Path, *, seed: int, columns: int = 1, outline: bool = False
) -> Truth:
    """Write a document with known structure (see the module docstring).

    :param path: where to write it.
    :param seed: chooses the words, the numbers of sections, items and rows.
    :param columns: 1 or 2 columns per page.
    :param outline: also write the headings as bookmarks.
    :returns: what the document holds.
    """
    rng = random.Random(seed)
    pdf = _Doc(format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_auto_page_break(False)
    pdf.set_title(f"Generated report {seed}")
    writer = _Writer(pdf, columns, rng, outline)
    writer.heading(f"Report on {rng.choice(_TOPICS)} and {rng.choice(_TOPICS)} {seed}", 1)
    writer.heading("Abstract", 2)
    writer.paragraph(60)
    topics = rng.sample(_TOPICS, 4)
    wrap_at = rng.randrange(4)
    tables = ["grid", "none", "three-rules"]
    rng.shuffle(tables)
    for number, topic in enumerate(topics, start=1):
        title = f"{number} {topic}"
        if number - 1 == wrap_at:
            title += " of the " + " and ".join(rng.sample(_WORDS, 5)) + " in the regions studied"
        writer.heading(title, 2)
        writer.paragraph(rng.randint(40, 90))
        for sub in range(1, rng.randint(2, 3)):
            writer.heading(f"{number}.{sub} {rng.choice(_TOPICS)}", 3)
            writer.paragraph(rng.randint(30, 70))
            if rng.random() < 0.5:
                writer.heading(rng.choice(_TOPICS) + " in detail", 4)
                writer.paragraph(rng.randint(20, 50))
        writer.items("bullet" if number % 2 else "number", rng.randint(3, 5))
        writer.paragraph(rng.randint(20, 40))
        if number - 1 < len(tables):
            writer.table(tables[number - 1])
    writer.heading("Conclusion", 2)
    writer.paragraph(50)
    pdf.output(str(path))
    return writer.truth
