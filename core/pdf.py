"""The product's PDF layout (title, headings, label/value lines, paragraphs) and the PDF
download response, with fpdf2: pure Python, no system libraries. The built-in Helvetica
covers Latin-1 (æ, ø, å included); other characters are replaced rather than breaking the
document."""

from django.http import HttpResponse
from django.utils.http import content_disposition_header


def latin1(value):
    return str(value or "").encode("latin-1", "replace").decode("latin-1")


class PdfDocument:
    """An A4 document with the product's title, headings, label/value lines and paragraphs."""

    def __init__(self, title):
        # fpdf2 and its font tables take about 20 MB: loaded by the first PDF a web worker
        # makes, not by every worker at start (PDFs are a rare page).
        from fpdf import FPDF

        self.pdf = pdf = FPDF(format="A4")
        pdf.set_title(latin1(title))
        pdf.set_creator("Guardrail")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)

    def heading(self, text):
        self.pdf.ln(3)
        self.pdf.set_font("Helvetica", "B", 12)
        self.pdf.cell(0, 8, latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font("Helvetica", size=10)

    def line_of(self, label, value):
        self.pdf.set_font("Helvetica", "B", 10)
        self.pdf.cell(55, 6, latin1(label))
        self.pdf.set_font("Helvetica", size=10)
        self.pdf.multi_cell(0, 6, latin1(value) or "-", new_x="LMARGIN", new_y="NEXT")

    def paragraph(self, text):
        self.pdf.multi_cell(0, 6, latin1(text), new_x="LMARGIN", new_y="NEXT")

    def space(self, height):
        self.pdf.ln(height)

    def output_bytes(self):
        return bytes(self.pdf.output())


def pdf_response(data, filename):
    """A PDF download. The name is quoted (or encoded) by Django, so a number typed with
    quotes, semicolons or line breaks cannot break the header."""
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    return response
