"""PDF documents generated from the product's data (consent forms, invoice copies) with
fpdf2: pure Python, no system libraries. The built-in Helvetica covers Latin-1 (æ, ø, å
included); other characters are replaced rather than breaking the document."""

from django.http import HttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from fpdf import FPDF


def _text(value):
    return str(value or "").encode("latin-1", "replace").decode("latin-1")


class _Document(FPDF):
    def __init__(self, title):
        super().__init__(format="A4")
        self.set_title(_text(title))
        self.set_creator("Guardrail")
        self.set_auto_page_break(auto=True, margin=15)
        self.add_page()
        self.set_font("Helvetica", "B", 16)
        self.cell(0, 10, _text(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=10)

    def heading(self, text):
        self.ln(3)
        self.set_font("Helvetica", "B", 12)
        self.cell(0, 8, _text(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=10)

    def line_of(self, label, value):
        self.set_font("Helvetica", "B", 10)
        self.cell(55, 6, _text(label))
        self.set_font("Helvetica", size=10)
        self.multi_cell(0, 6, _text(value) or "-", new_x="LMARGIN", new_y="NEXT")

    def paragraph(self, text):
        self.multi_cell(0, 6, _text(text), new_x="LMARGIN", new_y="NEXT")

    def output_bytes(self):
        return bytes(self.output())


def consent_form_pdf(context):
    contact, customer, entity = context["contact"], context["customer"], context["entity"]
    pdf = _Document(f"Consent form - {entity.name}")
    pdf.line_of("Customer", f"{customer.name} ({customer.number})")
    pdf.line_of("Contact person", contact.name + (f", {contact.title}" if contact.title else ""))
    pdf.line_of("Email", contact.email)
    pdf.line_of("Phone", contact.phone)
    pdf.heading("Communication consents")
    for field in context["fields"]:
        state = "Granted" if field["granted"] else "Not granted"
        pdf.line_of(state, f"{field['purpose'].name} ({field['purpose'].get_channel_display()})")
    privacy = context["privacy"]
    if privacy.policy_url:
        version = f" (version {privacy.policy_version})" if privacy.policy_version else ""
        pdf.heading("Privacy policy")
        pdf.paragraph(privacy.policy_url + version)
    pdf.heading("Companies we exchange data with")
    if not context["processors"]:
        pdf.paragraph("None.")
    for processor in context["processors"]:
        signed = (
            f", agreement {processor.agreement_date:%Y-%m-%d}" if processor.agreement_date else ""
        )
        pdf.paragraph(f"{processor.name} - {processor.purpose} - {processor.country}{signed}")
    pdf.ln(4)
    pdf.paragraph(f"Printed {timezone.localtime():%Y-%m-%d %H:%M}.")
    return pdf.output_bytes()


def invoice_copy_pdf(context):
    invoice, entity = context["invoice"], context["entity"]
    pdf = _Document(f"Invoice {invoice.number} (copy)")
    pdf.paragraph(entity.name)
    pdf.heading("Customer")
    for label, value in context["customer_fields"]:
        pdf.line_of(label, value)
    pdf.heading("Invoice")
    pdf.line_of("Issued", f"{invoice.issued_on:%Y-%m-%d}")
    pdf.line_of("Due", f"{invoice.due_on:%Y-%m-%d}")
    pdf.line_of("Amount", f"{invoice.amount:.2f} {invoice.currency}")
    pdf.line_of("Paid", f"{invoice.amount_paid:.2f} {invoice.currency}")
    pdf.line_of("Outstanding", f"{invoice.outstanding:.2f} {invoice.currency}")
    if invoice.text:
        pdf.heading("Text")
        pdf.paragraph(invoice.text)
    return pdf.output_bytes()


def pdf_response(data, filename):
    """A PDF download. The name is quoted (or encoded) by Django, so a number typed with
    quotes, semicolons or line breaks cannot break the header."""
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    return response
