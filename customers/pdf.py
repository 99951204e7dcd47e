"""A copy of an invoice, from the invoice and the customer's current data: the context of
the printable page and the PDF (for staff and for the customer's link page)."""

from core.pdf import PdfDocument, pdf_response
from customers.models import ANONYM


def invoice_copy_context(invoice):
    customer = invoice.customer
    anonymous = customer.anonymised_at is not None

    def shown(value):
        return ANONYM if anonymous else (value or "")

    return {
        "invoice": invoice,
        "entity": invoice.entity,
        "customer_fields": [
            ("Customer", shown(customer.name)),
            ("Customer number", customer.number),
            ("Organisation number", shown(customer.organisation_number)),
            ("Address", shown(customer.address)),
            ("Email", shown(customer.email)),
            ("Phone", shown(customer.phone)),
        ],
    }


def invoice_copy_pdf(context):
    invoice, entity = context["invoice"], context["entity"]
    pdf = PdfDocument(f"Invoice {invoice.number} (copy)")
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


def invoice_copy_response(invoice, filename):
    return pdf_response(invoice_copy_pdf(invoice_copy_context(invoice)), filename)
