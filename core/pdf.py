"""The product's PDF layout (title, headings, label/value lines, paragraphs) and the PDF
download response, with fpdf2: pure Python, no system libraries. The built-in Helvetica
covers Latin-1 (æ, ø, å included); other characters are replaced rather than breaking the
document."""

from django.http import HttpResponse
from django.utils.http import content_disposition_header
from fpdf import FPDF


def latin1(value):
    return str(value or "").encode("latin-1", "replace").decode("latin-1")


class PdfDocument(FPDF):
    def __init__(self, title):
        super().__init__(format="A4")
        self.set_title(latin1(title))
        self.set_creator("Guardrail")
        self.set_auto_page_break(auto=True, margin=15)
        self.add_page()
        self.set_font("Helvetica", "B", 16)
        self.cell(0, 10, latin1(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=10)

    def heading(self, text):
        self.ln(3)
        self.set_font("Helvetica", "B", 12)
        self.cell(0, 8, latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=10)

    def line_of(self, label, value):
        self.set_font("Helvetica", "B", 10)
        self.cell(55, 6, latin1(label))
        self.set_font("Helvetica", size=10)
        self.multi_cell(0, 6, latin1(value) or "-", new_x="LMARGIN", new_y="NEXT")

    def paragraph(self, text):
        self.multi_cell(0, 6, latin1(text), new_x="LMARGIN", new_y="NEXT")

    def output_bytes(self):
        return bytes(self.output())


def pdf_response(data, filename):
    """A PDF download. The name is quoted (or encoded) by Django, so a number typed with
    quotes, semicolons or line breaks cannot break the header."""
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    return response
