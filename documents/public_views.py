"""What customers reach from emails, without an account.

A link grants one document, one invoice PDF or one customer's interactive page (a consent
link's page is consent.views.SelfServiceView). Each page has two addresses
(documents.urls): the link's own, /l/<token>/, which emails carry, and the clean
/l/open/<handle>/ of the link-bound session that a GET of the former exchanges the token
for (customers.link_session), so the token leaves the address bar and every later request.

Opening a link is not spending it: mail scanners fetch every link of a message (GET and
HEAD) before its recipient does, so neither changes anything. The GET of the token's URL is
logged as an access that spends no use; HEAD and the clean pages log nothing. A document
link's page says what the link is and has a Download button: that POST spends the use, as
the customer's page's actions do (an invoice's PDF, a promise, a dispute). A POST to the
token's own URL does the same without the session (a client that keeps no cookies; the
token is its credential).

Every answer carries no-referrer, no-store and noindex headers (also those no view makes:
core.link_privacy); an unusable link gets a plain page and, where only its time ran out, a
button that emails a fresh link to the contact's address on file.
"""

import logging
from datetime import timedelta

from django import forms
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.tenancy import tenant_scope
from core.http import parse_int, private
from customers import link_session, links
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


NOT_VALID = "This link is not valid."
USED_UP = "This link has been used as many times as it allows."
# The clean page of a name (documents.urls): the same page, addressed by the session.
OPEN = {
    "customer-link": "customer-link-open",
    "customer-link-renew": "customer-link-open-renew",
    "customer-link-invoice-pdf": "customer-link-open-invoice-pdf",
}


@method_decorator(csrf_exempt, name="dispatch")
class LinkPage(View):
    """A page of a link, addressed by its token or by its link-bound session.

    CSRF-exempt for the same reason as the consent page: no-referrer makes browsers post
    `Origin: null`, which Django's check refuses. A POST through the session needs its
    cookie (SameSite=Lax: never sent with a cross-site POST) and the page's form key; a
    POST to the token's URL has the unguessable token as its credential
    (customers.link_session)."""

    def by_session(self):
        return "handle" in self.kwargs

    def url(self, name, **kwargs):
        """A page of this link, addressed as this request is (by session or by token)."""
        if self.by_session():
            return reverse(OPEN[name], kwargs={"handle": self.kwargs["handle"], **kwargs})
        return reverse(name, kwargs={"token": self.kwargs["token"], **kwargs})

    def key(self):
        return link_session.form_key(self.kwargs["handle"]) if self.by_session() else ""

    def plain(self, request, message, *, advice=None, renew=False, status=410):
        return private(
            render(
                request,
                "documents/link_dead.html",
                {
                    "message": message,
                    "advice": advice,
                    "renew_url": self.url("customer-link-renew") if renew else None,
                    "key": self.key(),
                },
                status=status,
            )
        )

    def dead(self, request, message, link=None):
        renew = link is not None and document_links.renewable(link, timezone.now())
        return self.plain(request, message, renew=renew)

    def session_over(self, request):
        return self.plain(
            request,
            "This page has expired.",
            advice="Open the link in your email again: each opening works for "
            f"{link_session.SESSION_SECONDS // 60} minutes, in a browser that accepts cookies.",
        )

    def find(self, request):
        """(link, None), or (None, the answer): the link named by the token or the session."""
        if not self.by_session():
            link = links.find(self.kwargs["token"])
            return (link, None) if link else (None, self.dead(request, NOT_VALID))
        link = links.find_by_id(link_session.session_link_id(request, self.kwargs["handle"]))
        if link is None or link.kind == Kind.CONSENT:  # a consent session lives under /c/
            return None, self.session_over(request)
        return link, None

    def usable(self, request):
        link, answer = self.find(request)
        if answer:
            return None, answer
        problem = links.problem_with(link, timezone.now())
        if problem:
            return None, self.dead(request, problem, link)
        return link, None

    def refused(self, request):
        """Why this POST may not act (through the session, without its page's form key),
        or None."""
        if self.by_session() and not link_session.form_key_ok(request, self.kwargs["handle"]):
            return self.plain(
                request,
                "This form has expired.",
                advice="Open the link in your email again and use the page it opens.",
                status=403,
            )
        return None

    def head(self, request, **kwargs):
        """Mail scanners and link previews check links with HEAD: say whether this one
        works, and change nothing (no session, no use, no access logged)."""
        _, answer = self.usable(request)
        return answer or private(HttpResponse())

    def open(self, request):
        """A GET of the link's own URL: the token is exchanged for a link-bound session on
        a clean URL (customers.link_session). Never a use."""
        link, answer = self.find(request)
        return answer or link_session.exchange(request, link, now=timezone.now())

    def use(self, request, link):
        return links.use(
            link,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT"),
            now=timezone.now(),
        )


class LinkView(LinkPage):
    """The link's page: a document's or an invoice PDF's page with its Download button, or
    the customer's interactive page."""

    def get(self, request, **kwargs):
        if not self.by_session():
            return self.open(request)
        link, answer = self.usable(request)
        if answer:
            return answer
        if link.kind == Kind.INTERACTIVE:
            return self.interactive_page(request, link)
        return self.landing(request, link)

    def landing(self, request, link):
        """What a document link is, and the button that downloads it (the POST)."""
        with tenant_scope(link.entity):
            context = {
                "entity": link.entity,
                "document": link.document if link.kind == Kind.DOCUMENT else None,
                "invoice": link.invoice if link.kind == Kind.INVOICE_PDF else None,
                "uses_left": None if link.max_uses is None else link.max_uses - link.uses,
                "action": self.url("customer-link"),
                "key": self.key(),
            }
            return private(render(request, "documents/link_landing.html", context))

    def post(self, request, **kwargs):
        refused = self.refused(request)
        if refused:
            return refused
        # Download is what the page's button posts (no action named); a page action
        # (promise, dispute) goes only to the customer's page.
        download = request.POST.get("action", "download") == "download"
        # The common case first: a usable document link, checked, counted and logged by
        # one statement. It makes no ORM query, so it needs no tenant scope.
        taken = self.take_download(request) if download else None
        if taken:
            return self.file_or_dead(
                request, taken.file_name, taken.original_name, taken.content_type
            )
        link, answer = self.usable(request)
        if answer:
            return answer
        if link.kind == Kind.INTERACTIVE:
            return self.act(request, link)
        if not download or link.kind not in (Kind.DOCUMENT, Kind.INVOICE_PDF):
            raise Http404("Nothing to submit here.")
        if not self.use(request, link):
            return self.dead(request, USED_UP, link)
        with tenant_scope(link.entity):
            if link.kind == Kind.DOCUMENT:
                document = link.document
                return self.file_or_dead(
                    request, document.file.name, document.original_name, document.content_type
                )
            return private(invoice_pdf_response(link.invoice))

    def take_download(self, request):
        meta = {
            "ip": client_ip(request),
            "user_agent": request.META.get("HTTP_USER_AGENT"),
            "now": timezone.now(),
        }
        if self.by_session():
            link_id = link_session.session_link_id(request, self.kwargs["handle"])
            return document_links.take_session_download(link_id, **meta)
        return document_links.take_download(self.kwargs["token"], **meta)

    def file_or_dead(self, request, file_name, original_name, content_type):
        """The document; if its file is gone from storage (the row survived it), a plain
        page for the customer and an error for the operators instead of a server error."""
        try:
            return document_response(file_name, original_name, content_type)
        except FileNotFoundError:
            logger.error("Document file %s is missing from storage.", file_name)
            return self.dead(request, "This document is no longer available.")

    def interactive_page(self, request, link, forms_=None):
        with tenant_scope(link.entity):
            invoices = [i for i in link.customer.invoices.order_by("due_on") if i.outstanding > 0]
            actions = {
                a.invoice_id: a
                for a in InvoiceAction.objects.filter(invoice__in=invoices).order_by("created_at")
            }
            rows = [
                {
                    "invoice": i,
                    "pdf_url": self.url("customer-link-invoice-pdf", invoice_id=i.pk),
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
                        "action": self.url("customer-link"),
                        "key": self.key(),
                    },
                )
            )

    def act(self, request, link):
        """The customer's promise or dispute, posted from its page."""
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
        return private(redirect(self.url("customer-link")))


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


class InteractiveInvoicePdfView(LinkPage):
    """A PDF of one open invoice, from the customer's interactive page: its Download
    button posts here. A GET goes to the page (by way of the exchange, with a token)."""

    def get(self, request, **kwargs):
        if not self.by_session():
            return self.open(request)
        return private(redirect(self.url("customer-link")))

    def post(self, request, invoice_id, **kwargs):
        refused = self.refused(request)
        if refused:
            return refused
        link, answer = self.usable(request)
        if answer:
            return answer
        if link.kind != Kind.INTERACTIVE:
            raise Http404("Not a customer page link.")
        with tenant_scope(link.entity):
            invoice = open_invoice(link.customer, invoice_id)
            if invoice is None:
                raise Http404("No such invoice on this page.")
            if not self.use(request, link):
                return self.dead(request, USED_UP, link)
            return private(invoice_pdf_response(invoice))


class RenewLinkView(LinkPage):
    """Email a fresh link to the contact's address on file (never one typed here)."""

    def get(self, request, **kwargs):
        if not self.by_session():
            return self.open(request)
        return private(redirect(self.url("customer-link")))

    def post(self, request, **kwargs):
        refused = self.refused(request)
        if refused:
            return refused
        link, answer = self.find(request)  # unlike usable(): a dead link is what is renewed
        if answer and self.by_session():
            return answer
        now = timezone.now()
        if link is None or not document_links.renewable(link, now):
            return self.plain(
                request, "No new link can be sent for this one. Ask the company that sent it."
            )
        if not document_links.may_renew(link, now):
            response = self.plain(
                request, "A new link was sent a few minutes ago. Check your email.", status=429
            )
            response["Retry-After"] = str(int(document_links.RENEW_EVERY.total_seconds()))
            return response
        with tenant_scope(link.entity):
            send_fresh_link(link, request=request)
        return self.plain(
            request,
            "A new link is on its way to the email address we have on file.",
            status=200,
        )
