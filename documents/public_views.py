"""What customers reach from emails, without an account: /l/<token>/.

A link grants one document, one invoice PDF, or one customer's interactive page. Every
answer carries no-referrer, no-store and noindex headers; an unusable link gets a plain
page and a button that emails a fresh link to the contact's address on file.
"""

import logging
from datetime import timedelta

from django import forms
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.tenancy import tenant_scope
from core.http import parse_int, private
from customers import links
from customers.models import CustomerLink
from customers.pdf import invoice_copy_response
from documents import links as document_links
from documents import services
from documents.emails import send_fresh_link
from documents.models import Document, InvoiceAction
from security.client_ip import client_ip

logger = logging.getLogger(__name__)

Kind = CustomerLink.Kind


def safe_filename(name, fallback="document.pdf"):
    kept = "".join(ch for ch in name if ch.isalnum() or ch in "._- ").strip(" .")
    return kept[:100] or fallback


PROMISE_HORIZON = timedelta(days=365)


def open_invoice(customer, invoice_id):
    """One invoice the customer's page shows (still outstanding), or None: paid ones get
    no promises, disputes or PDFs through the page."""
    invoice = customer.invoices.filter(pk=parse_int(invoice_id)).first()
    return invoice if invoice is not None and invoice.outstanding > 0 else None


class PromiseForm(forms.Form):
    invoice = forms.IntegerField(widget=forms.HiddenInput)
    promised_on = forms.DateField(
        label="I will pay by", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean_promised_on(self):
        day = self.cleaned_data["promised_on"]
        today = timezone.localdate()
        if day < today:
            raise forms.ValidationError("Choose today or a later date.")
        if day > today + PROMISE_HORIZON:
            raise forms.ValidationError(
                "Choose a date within a year; for a longer plan, contact us in a dispute note."
            )
        return day


class DisputeForm(forms.Form):
    invoice = forms.IntegerField(widget=forms.HiddenInput)
    comment = forms.CharField(
        label="What is wrong with this invoice?",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


@method_decorator(csrf_exempt, name="dispatch")
class LinkView(View):
    """CSRF-exempt for the same reason as the consent page: the URL token is the
    credential, and no-referrer makes browsers post `Origin: null`."""

    def dead(self, request, message, link=None):
        can_renew = link is not None and document_links.renewable(link, timezone.now())
        return private(
            render(
                request,
                "documents/link_dead.html",
                {"message": message, "token": self.kwargs["token"], "can_renew": can_renew},
                status=410,
            )
        )

    def usable(self, request, token):
        link = links.find(token)
        if link is None:
            return None, self.dead(request, "This link is not valid.")
        problem = links.problem_with(link, timezone.now())
        if problem:
            return None, self.dead(request, problem, link)
        return link, None

    def head(self, request, token, *args, **kwargs):
        """Mail scanners and link previews check links with HEAD: say whether this one
        works, without counting a use (a one-use link would be spent before the customer
        clicks) or logging an access."""
        _, answer = self.usable(request, token)
        return answer or private(HttpResponse())

    def get(self, request, token):
        # The common case first: a usable document link, checked, counted and logged by
        # one statement. It makes no ORM query, so it needs no tenant scope.
        download = document_links.take_download(
            token,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT"),
            now=timezone.now(),
        )
        if download:
            return self.file_or_dead(
                request, download.file_name, download.original_name, download.content_type
            )
        link, answer = self.usable(request, token)
        if answer:
            return answer
        now = timezone.now()
        if link.kind == Kind.INTERACTIVE:
            # Every opening is logged; only actions and downloads spend uses.
            links.log_view(
                link, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=now
            )
            return self.interactive_page(request, link)
        if link.kind == Kind.CONSENT:
            # A consent link's own address is /c/<token>/; that page counts its use.
            return private(redirect("consent-self-service", token=token))
        if not links.use(
            link, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=now
        ):
            return self.dead(request, "This link has been used as many times as it allows.", link)
        with tenant_scope(link.entity):
            if link.kind == Kind.DOCUMENT:
                document = link.document
                return self.file_or_dead(
                    request, document.file.name, document.original_name, document.content_type
                )
            if link.kind == Kind.INVOICE_PDF:
                return private(invoice_pdf_response(link.invoice))
        raise Http404("Unknown link kind.")

    def file_or_dead(self, request, file_name, original_name, content_type):
        """The document; if its file is gone from storage (the row survived it), a plain
        page for the customer and an error for the operators instead of a server error."""
        try:
            return document_response(file_name, original_name, content_type)
        except FileNotFoundError:
            logger.error("Document file %s is missing from storage.", file_name)
            return self.dead(request, "This document is no longer available.")

    def interactive_page(self, request, link, forms_=None, saved=None):
        with tenant_scope(link.entity):
            invoices = [i for i in link.customer.invoices.order_by("due_on") if i.outstanding > 0]
            actions = {
                a.invoice_id: a
                for a in InvoiceAction.objects.filter(invoice__in=invoices).order_by("created_at")
            }
            rows = [
                {
                    "invoice": i,
                    "last_action": actions.get(i.pk),
                    "promise": PromiseForm(initial={"invoice": i.pk}, prefix=f"p{i.pk}"),
                    "dispute": DisputeForm(initial={"invoice": i.pk}, prefix=f"d{i.pk}"),
                }
                for i in invoices
            ]
            if forms_:
                for row in rows:
                    row.update(forms_.get(row["invoice"].pk, {}))
            return private(
                render(
                    request,
                    "documents/interactive.html",
                    {
                        "link": link,
                        "entity": link.entity,
                        "customer": link.customer,
                        "rows": rows,
                        "saved": saved,
                        "token": self.kwargs["token"],
                    },
                )
            )

    def post(self, request, token):
        link, answer = self.usable(request, token)
        if answer:
            return answer
        if link.kind != Kind.INTERACTIVE:
            raise Http404("Nothing to submit here.")
        action = request.POST.get("action")
        with tenant_scope(link.entity):
            invoice = open_invoice(link.customer, request.POST.get("invoice_id"))
            if invoice is None:
                return self.interactive_page(request, link)
            prefix = f"{'p' if action == 'promise' else 'd'}{invoice.pk}"
            form = (PromiseForm if action == "promise" else DisputeForm)(
                request.POST, prefix=prefix
            )
            if not form.is_valid():
                key = "promise" if action == "promise" else "dispute"
                return self.interactive_page(request, link, forms_={invoice.pk: {key: form}})
            services.record_invoice_action(
                link,
                invoice,
                kind=InvoiceAction.Kind.PROMISE
                if action == "promise"
                else InvoiceAction.Kind.DISPUTE,
                promised_on=form.cleaned_data.get("promised_on"),
                comment=form.cleaned_data.get("comment", ""),
                request=request,
                now=timezone.now(),
            )
        return redirect("customer-link", token=token)


def document_response(file_name, original_name, content_type):
    """A stored document as an attachment, streamed from the Document file field's storage."""
    storage = Document._meta.get_field("file").storage
    return private(
        FileResponse(
            storage.open(file_name, "rb"),
            as_attachment=True,
            filename=safe_filename(original_name),
            content_type=content_type,
        )
    )


def invoice_pdf_response(invoice):
    return invoice_copy_response(invoice, f"invoice-{safe_filename(invoice.number)}.pdf")


class InteractiveInvoicePdfView(LinkView):
    """A PDF of one open invoice, from the customer's interactive page."""

    http_method_names = ["get", "head", "options"]

    def get(self, request, token, invoice_id):
        link, answer = self.usable(request, token)
        if answer:
            return answer
        if link.kind != Kind.INTERACTIVE:
            raise Http404("Not a customer page link.")
        with tenant_scope(link.entity):
            invoice = open_invoice(link.customer, invoice_id)
            if invoice is None:
                raise Http404("No such invoice on this page.")
            links.use(
                link,
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT"),
                now=timezone.now(),
            )
            return private(invoice_pdf_response(invoice))


class RenewLinkView(LinkView):
    """Email a fresh link to the contact's address on file (never one typed here)."""

    def get(self, request, token):
        return redirect("customer-link", token=token)

    def post(self, request, token):
        link = links.find(token)
        now = timezone.now()
        if link is None or not document_links.renewable(link, now):
            return self.dead(
                request, "No new link can be sent for this one. Ask the company that sent it."
            )
        if not document_links.may_renew(link, now):
            return private(
                render(
                    request,
                    "documents/link_dead.html",
                    {
                        "message": "A new link was sent a few minutes ago. Check your email.",
                        "token": token,
                        "can_renew": False,
                    },
                    status=429,
                )
            )
        with tenant_scope(link.entity):
            send_fresh_link(link, request=request)
        return private(
            render(
                request,
                "documents/link_dead.html",
                {
                    "message": "A new link is on its way to the email address we have on file.",
                    "token": token,
                    "can_renew": False,
                },
                status=200,
            )
        )
