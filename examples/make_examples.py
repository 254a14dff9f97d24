"""Regenerate the example PDFs of the README's first command (needs fpdf2).

    python examples/make_examples.py

The texts are written for this project; the PDFs are committed so the first command works
without this script.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF
from fpdf.enums import EncryptionMethod

HERE = Path(__file__).parent

GUIDE = [
    (
        "Why ingest exists",
        "Teams that build search or question answering over their own documents spend "
        "a surprising share of their time on the first step: getting text out of PDFs. "
        "A folder of a few thousand reports, manuals and scanned letters hides every kind "
        "of trouble, from files that are not PDFs at all to pages that are only pictures. "
        "The tool that reads them should finish, say what it could not read, and never "
        "lose what it already did.",
    ),
    (
        "What a run does",
        "A run collects the files, extracts the text of every page, cleans it, cuts it "
        "into chunks that carry their page numbers, and writes the chunks to a store. "
        "Each step is a plugin, so a team can swap the extractor or add a store without "
        "touching the rest. Identifiers come from the content of each file, so running "
        "the same command twice gives the same records, and a renamed file is still the "
        "same document.",
    ),
    (
        "Reading the results",
        "The default store is a JSON Lines file with one chunk per line. Each line names "
        "the source file, the first and last page of the chunk and the character offsets "
        "of the chunk within the document text. With the SQLite store, the command "
        "ingest search finds the chunks that best match a query and prints where they "
        "come from, page by page.",
    ),
]

NOTES = (
    "Field notes, spring survey. The river was high after three days of rain and the "
    "lower meadow stood under water until noon. We counted forty-two herons along the "
    "eastern bank, more than in any year since the survey began. The willow cuttings "
    "planted last autumn have rooted well; only six of the sixty failed."
)

BUDGET = (
    "Quarterly budget summary. Spending on equipment stayed within the plan, while "
    "travel came in twelve percent under budget because two workshops moved online. "
    "This file is encrypted with an empty user password: readers open it without asking, "
    "and ingest records it as encrypted in the document metadata."
)


def _document(title: str) -> FPDF:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("The ingest project")
    pdf.set_subject("Example input for the README's first command")
    pdf.set_font("Helvetica", size=12)
    return pdf


def make_guide(path: Path) -> None:
    pdf = _document("A short guide to ingest")
    for number, (heading, body) in enumerate(GUIDE, start=1):
        pdf.add_page()
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 8, "A short guide to ingest", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.cell(0, 12, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 7, body)
        # The footer sits in the bottom margin; without this it would start a new page.
        pdf.set_auto_page_break(False)
        pdf.set_y(-20)
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 8, f"Page {number} of {len(GUIDE)}", align="C")
        pdf.set_auto_page_break(True, margin=20)
    pdf.output(str(path))


def make_notes(path: Path) -> None:
    pdf = _document("Field notes")
    pdf.add_page()
    pdf.multi_cell(0, 7, NOTES)
    pdf.output(str(path))


def make_encrypted(path: Path) -> None:
    pdf = _document("Quarterly budget summary")
    pdf.set_encryption(
        owner_password="ingest-example-owner",
        user_password="",
        encryption_method=EncryptionMethod.RC4,
    )
    pdf.add_page()
    pdf.multi_cell(0, 7, BUDGET)
    pdf.output(str(path))


if __name__ == "__main__":
    make_guide(HERE / "guide.pdf")
    make_notes(HERE / "field-notes.pdf")
    make_encrypted(HERE / "budget-encrypted.pdf")
