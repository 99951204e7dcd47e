"""Staff side of documents and links: the card's Documents tab, uploads, links, reminders."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from accounts.access import MemberRequiredMixin, ScopedObjectMixin
from accounts.roles import Capability
from core.http import ask_to_confirm, parse_int
from customers import links
from customers.mixins import CustomerMixin, RefusedOnceAnonymised
from customers.models import ContactPerson, CustomerLink, LinkUse
from customers.selectors import visible_customers
from documents import emails, services
from documents.consent_check import email_consent
from documents.models import Document, OutgoingEmail

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
SIGNATURES = {
    "application/pdf": [b"%PDF-"],
    "image/png": [b"\x89PNG\r\n\x1a\n"],
    "image/jpeg": [b"\xff\xd8\xff"],
}


def sniff(head):
    """The content type by the file's first bytes (never by its name), or None."""
    for content_type, magics in SIGNATURES.items():
        if any(head.startswith(magic) for magic in magics):
            return content_type
    return None


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=Document.Kind.choices)
    invoice = forms.ModelChoiceField(queryset=None, required=False, empty_label="No invoice")
    file = forms.FileField()

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invoice"].queryset = customer.invoices.all()

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None:
            return cleaned
        if upload.size > MAX_UPLOAD_BYTES:
            self.add_error(
                "file", f"The file is {upload.size // (1024 * 1024)} MB; the limit is 10 MB."
            )
            return cleaned
        head = upload.read(16)
        upload.seek(0)
        content_type = sniff(head)
        if cleaned.get("kind") == Document.Kind.INVOICE and content_type != "application/pdf":
            self.add_error(
                "file", "An invoice must be a PDF file (this file's content is not PDF)."
            )
        elif content_type is None:
            self.add_error(
                "file", "Upload a PDF, PNG or JPEG file (this file's content is none of them)."
            )
        cleaned["content_type"] = content_type
        return cleaned


class SendLinkForm(forms.Form):
    WHAT = [
        ("interactive", "The customer's page (open invoices, promise to pay, dispute)"),
        ("invoices", "PDFs of all open invoices"),
        ("document", "One document"),
    ]
    what = forms.ChoiceField(choices=WHAT)
    document = forms.ModelChoiceField(queryset=None, required=False)
    contact = forms.ModelChoiceField(queryset=None)
    max_uses = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        help_text="Empty: no limit while the link is valid.",
    )

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.fields["document"].queryset = customer.documents.all()
        self.fields["contact"].queryset = ContactPerson.objects.filter(customer=customer).exclude(
            email=""
        )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("what") == "document" and not cleaned.get("document"):
            self.add_error("document", "Choose the document to link to.")
        if cleaned.get("what") == "invoices" and not emails.open_invoices(self.customer):
            self.add_error(
                "what", "The customer has no open invoices, so there is nothing to send."
            )
        return cleaned


class CustomerDocumentsView(RefusedOnceAnonymised, CustomerMixin, View):
    tab = "documents"
    refused_methods = {"POST"}  # what was sent stays listed; nothing new is sent

    def page(self, customer, upload=None, send=None):
        context = self.card_context(customer)
        now = timezone.now()
        context.update(
            documents=customer.documents.select_related("invoice", "uploaded_by"),
            links=[
                (link, links.status_of(link, now))
                for link in customer.links.select_related(
                    "contact", "document", "invoice", "entity__security_policy"
                )[:100]
            ],
            emails=OutgoingEmail.objects.filter(customer=customer).select_related("contact")[:50],
            upload_form=upload or UploadForm(customer=customer),
            send_form=send or SendLinkForm(customer=customer),
            reminder_contacts=ContactPerson.objects.filter(customer=customer).exclude(email=""),
        )
        return render(self.request, "documents/card_documents.html", context)

    def get(self, request, pk):
        return self.page(self.get_object())

    def post(self, request, pk):
        customer = self.get_object()
        if not request.tenancy.can(Capability.EDIT_CUSTOMERS):
            raise PermissionDenied("Your role cannot change documents or send links.")
        if request.POST.get("action") == "upload":
            form = UploadForm(request.POST, request.FILES, customer=customer)
            if not form.is_valid():
                return self.page(customer, upload=form)
            services.store_upload(customer, form.cleaned_data, actor=request.user, request=request)
            messages.success(request, "The document was uploaded.")
        else:
            form = SendLinkForm(request.POST, customer=customer)
            if not form.is_valid():
                return self.page(customer, send=form)
            granted, purpose = email_consent(form.cleaned_data["contact"])
            if not granted:
                name = purpose.name if purpose else "invoices and reminders by email"
                messages.error(
                    request,
                    f"Not sent: {form.cleaned_data['contact'].name} has not consented to “{name}”.",
                )
                return redirect("customer-documents", pk=customer.pk)
            count = services.send_links(
                customer, form.cleaned_data, actor=request.user, request=request
            )
            messages.success(
                request, f"{count} link(s) emailed to {form.cleaned_data['contact'].email}."
            )
        return redirect("customer-documents", pk=customer.pk)


class SendReminderView(RefusedOnceAnonymised, CustomerMixin, View):
    http_method_names = ["post"]
    required_capability = Capability.EDIT_CUSTOMERS

    def post(self, request, pk):
        customer = self.get_object()
        contact = ContactPerson.objects.filter(
            customer=customer, pk=parse_int(request.POST.get("contact"))
        ).first()
        if contact is None:
            messages.error(request, "Choose a contact person of this customer.")
            return redirect("customer-documents", pk=customer.pk)
        try:
            email = emails.queue_reminder(customer, contact, actor=request.user, request=request)
        except emails.ReminderRefused as refused:
            messages.error(request, refused.message)
        else:
            if email.status == OutgoingEmail.Status.SKIPPED:
                messages.warning(request, email.reason)
            else:
                messages.success(request, f"The reminder to {contact.email} is on its way.")
        return redirect("customer-documents", pk=customer.pk)


class DocumentDeleteView(ScopedObjectMixin, View):
    model = Document
    required_capability = Capability.EDIT_CUSTOMERS
    http_method_names = ["post"]

    def post(self, request, pk):
        document = self.get_object()
        customer_id = document.customer_id
        ask = ask_to_confirm(
            request,
            question=f"Delete {document.original_name}?",
            consequence="The file is deleted and every link to it stops working. This cannot "
            "be undone.",
            button="Delete the document",
            cancel_url=reverse("customer-documents", args=[customer_id]),
        )
        if ask:
            return ask
        services.delete_document(document, actor=request.user, request=request)
        messages.success(request, "The document was deleted.")
        return redirect("customer-documents", pk=customer_id)


class LinkRevokeView(ScopedObjectMixin, View):
    model = CustomerLink
    required_capability = Capability.EDIT_CUSTOMERS
    http_method_names = ["post"]

    def get_scoped_queryset(self):
        return super().get_scoped_queryset().select_related("customer")

    def post(self, request, pk):
        link = self.get_object()
        links.revoke(link, actor=request.user, request=request)
        messages.success(request, "The link was withdrawn.")
        return redirect("customer-documents", pk=link.customer_id)


class LinkAccessView(ScopedObjectMixin, View):
    """Every access to one link: when, from which address and browser, and whether it
    spent a use. (The latest 200; the count is of all.)"""

    model = CustomerLink
    required_capability = Capability.VIEW_CUSTOMERS
    shown = 200

    def get_scoped_queryset(self):
        return (
            super()
            .get_scoped_queryset()
            .select_related("customer", "contact", "document", "invoice")
        )

    def get(self, request, pk):
        link = self.get_object()
        accesses = LinkUse.objects.filter(link=link)
        return render(
            request,
            "documents/link_accesses.html",
            {
                "link": link,
                "customer": link.customer,
                "accesses": accesses[: self.shown],
                "total": accesses.count(),
                "shown": self.shown,
            },
        )


class ReminderPreviewView(MemberRequiredMixin, View):
    """How the entity's payment reminder looks, without sending or making links."""

    required_capability = Capability.EDIT_CUSTOMERS

    def get(self, request):
        customer = (
            visible_customers(request)
            .filter(contacts__isnull=False, anonymised_at__isnull=True)
            .first()
        )
        if customer is None:
            return render(request, "documents/reminder_preview.html", {"missing": True})
        contact = customer.contacts.first()
        context = emails.reminder_context(customer, contact, make_links=False)
        subject, text, html = emails.render_reminder(context)
        return render(
            request,
            "documents/reminder_preview.html",
            {"subject": subject, "text": text, "html": html, "customer": customer},
        )
