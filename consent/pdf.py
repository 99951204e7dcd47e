"""The consent form as a PDF (printed or attached for a contact to sign)."""

from django.utils import timezone

from core.pdf import PdfDocument


def consent_form_pdf(context):
    contact, customer, entity = context["contact"], context["customer"], context["entity"]
    pdf = PdfDocument(f"Consent form - {entity.name}")
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
    pdf.space(4)
    pdf.paragraph(f"Printed {timezone.localtime():%Y-%m-%d %H:%M}.")
    return pdf.output_bytes()
