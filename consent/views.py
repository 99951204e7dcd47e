"""Consent pages: staff editing and history, the consent form, privacy settings, and the
customer's own self-service page (no account; a signed link)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import TemplateView

from accounts.access import MemberRequiredMixin, ScopedObjectMixin
from accounts.roles import Capability
from accounts.tenancy import tenant_scope
from consent import services
from consent.models import ConsentEvent, ConsentSource, DataProcessor, PrivacySettings
from consent.pdf import consent_form_pdf
from core.http import ask_to_confirm, private
from core.pdf import pdf_response
from customers import link_session, links
from customers.models import ContactPerson, CustomerLink
from security.client_ip import client_ip

SEEN_MARKERS = {True: "on", False: "off", None: "none"}


def consent_fields(purposes, current, posted=None, seen=None):
    """The boxes of a consent page. Each carries, hidden, what it was shown with: the answer
    and the ledger's newest entry then (`was_<id>`, e.g. "on.42"), so a save writes only
    what the person changed (services.set_consents). `current` is services.seen_now();
    `posted` and `seen` (by purpose) show boxes again as they were submitted."""
    fields = []
    for p in purposes:
        shown = seen[p] if seen is not None and p in seen else current[p.pk]
        granted = posted[p] if posted is not None and p in posted else bool(current[p.pk].answer)
        fields.append(
            {
                "purpose": p,
                "name": f"purpose_{p.pk}",
                "granted": granted,
                "was": f"{SEEN_MARKERS[shown.answer]}.{shown.version}",
            }
        )
    return fields


def read_choices(post, purposes):
    return {p: post.get(f"purpose_{p.pk}") == "on" for p in purposes}


def read_seen(post, purposes):
    """{purpose: Seen} from the boxes' markers; a box without a valid marker is left out
    (and so not written)."""
    answers = {marker: answer for answer, marker in SEEN_MARKERS.items()}
    seen = {}
    for p in purposes:
        marker, _, version = (post.get(f"was_{p.pk}") or "").partition(".")
        if marker in answers and version.isdigit() and len(version) < 19:
            seen[p] = services.Seen(answers[marker], int(version))
    return seen


class ContactMixin(ScopedObjectMixin):
    """A contact person of a customer the request may see (else 404)."""

    model = ContactPerson
    required_capability = Capability.VIEW_CUSTOMERS

    def get_scoped_queryset(self):
        return super().get_scoped_queryset().select_related("customer")


class ContactConsentView(ContactMixin, View):
    template_name = "consent/contact_consent.html"
    history_shown = 100

    def page(self, contact, posted=None, seen=None, error=None):
        purposes = services.purposes_for(self.request.tenancy.entity)
        current = services.seen_now(contact, purposes)
        return render(
            self.request,
            self.template_name,
            {
                "contact": contact,
                "customer": contact.customer,
                "error": error,
                "fields": consent_fields(purposes, current, posted, seen),
                "can_edit": self.request.tenancy.can(Capability.EDIT_CUSTOMERS),
                "events": ConsentEvent.objects.filter(contact=contact).select_related(
                    "purpose", "actor"
                )[: self.history_shown],
                "history_total": ConsentEvent.objects.filter(contact=contact).count(),
                "history_shown": self.history_shown,
            },
        )

    def get(self, request, pk):
        return self.page(self.get_object())

    def post(self, request, pk):
        contact = self.get_object()
        if not request.tenancy.can(Capability.EDIT_CUSTOMERS):
            raise PermissionDenied("Your role cannot change consents.")
        purposes = services.purposes_for(request.tenancy.entity)
        choices, seen = read_choices(request.POST, purposes), read_seen(request.POST, purposes)
        try:
            events = services.save_staff_consents(
                contact, choices, seen=seen, actor=request.user, request=request
            )
        except services.ConsentConflict as conflict:
            # Nothing is saved. The boxes changed here (and not clashing) keep what was
            # ticked; every other box shows its answer now.
            clashing = set(conflict.purposes)
            changed_here = {
                p: v
                for p, v in choices.items()
                if p in seen and p not in clashing and v != bool(seen[p].answer)
            }
            return self.page(
                contact,
                posted=changed_here,
                seen={p: seen[p] for p in changed_here},
                error="While this page was open, someone else changed: "
                f"{conflict}. Those boxes now show the new answer; nothing was saved. "
                "Check them and save again.",
            )
        if events:
            messages.success(request, f"Saved {len(events)} change(s) for {contact.name}.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("contact-consent", pk=contact.pk)


class SendConsentLinkView(ContactMixin, View):
    http_method_names = ["post"]
    required_capability = Capability.EDIT_CUSTOMERS

    def post(self, request, pk):
        contact = self.get_object()
        if not contact.email:
            messages.error(request, f"{contact.name} has no email address; add one first.")
        elif contact.customer.anonymised_at:
            messages.error(request, "This customer is anonymised.")
        else:
            services.send_consent_link(contact, actor=request.user, request=request)
            messages.success(
                request, f"A link to their consent page was emailed to {contact.email}."
            )
        return redirect("contact-consent", pk=contact.pk)


class ConsentFormReportView(ContactMixin, View):
    """Customer -> Reports -> Consent form: printable page (and PDF) for one contact."""

    def get(self, request, pk):
        contact = self.get_object()
        context = consent_form_context(contact)
        if request.GET.get("format") == "pdf":
            return pdf_response(consent_form_pdf(context), f"consent-form-{contact.pk}.pdf")
        return render(request, "consent/consent_form.html", context)


def consent_form_context(contact):
    entity = contact.entity
    purposes = services.purposes_for(entity)
    return {
        "contact": contact,
        "customer": contact.customer,
        "entity": entity,
        "privacy": services.privacy_of(entity),
        "processors": list(DataProcessor.objects.filter(entity=entity)),
        "fields": consent_fields(purposes, services.seen_now(contact, purposes)),
    }


class PrivacyForm(forms.ModelForm):
    # A link typed without a scheme is read as https.
    policy_url = forms.URLField(
        label="Privacy policy URL", required=False, assume_scheme="https", max_length=200
    )

    class Meta:
        model = PrivacySettings
        fields = ["policy_url", "policy_version"]


class ProcessorForm(forms.ModelForm):
    class Meta:
        model = DataProcessor
        fields = ["name", "purpose", "country", "agreement_date"]
        widgets = {"agreement_date": forms.DateInput(attrs={"type": "date"})}


class PrivacySettingsView(MemberRequiredMixin, TemplateView):
    template_name = "consent/privacy_settings.html"
    required_capability = Capability.MANAGE_ENTITY_SECURITY

    def get_context_data(self, **kwargs):
        entity = self.request.tenancy.entity
        privacy = services.privacy_of(entity)
        kwargs.setdefault("form", PrivacyForm(instance=privacy))
        kwargs.setdefault("processor_form", ProcessorForm())
        return super().get_context_data(processors=DataProcessor.objects.all(), **kwargs)

    def post(self, request):
        entity = request.tenancy.entity
        if request.POST.get("action") == "processor":
            form = ProcessorForm(request.POST, instance=DataProcessor(entity=entity))
            if not form.is_valid():
                return self.render_to_response(self.get_context_data(processor_form=form))
            processor = services.add_processor(form, actor=request.user, request=request)
            messages.success(request, f"{processor.name} was added.")
            return redirect("privacy-settings")
        form = PrivacyForm(request.POST, instance=services.privacy_of(entity))
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        services.save_privacy_settings(form, actor=request.user, request=request)
        messages.success(request, "The privacy settings were saved.")
        return redirect("privacy-settings")


class ProcessorRemoveView(ScopedObjectMixin, View):
    model = DataProcessor
    required_capability = Capability.MANAGE_ENTITY_SECURITY
    http_method_names = ["post"]

    def post(self, request, pk):
        processor = self.get_object()
        ask = ask_to_confirm(
            request,
            question=f"Remove {processor.name}?",
            consequence="It no longer appears among the companies you share data with, on "
            "consent forms and on the contacts' own pages.",
            button="Remove it",
            cancel_url=reverse("privacy-settings"),
        )
        if ask:
            return ask
        services.remove_processor(processor, actor=request.user, request=request)
        messages.success(request, f"{processor.name} was removed.")
        return redirect("privacy-settings")


# --- Self-service (public) -------------------------------------------------------------------


SESSION_OVER = "This page has expired."
FORM_EXPIRED = "This form has expired."


@method_decorator(csrf_exempt, name="dispatch")
class SelfServiceView(View):
    """The contact's own consent page. Opening it changes nothing; only the submitted form
    does (and spends a use of the link).

    Two addresses: the link's own, /c/<token>/, which emails carry, and the clean
    /c/open/<handle>/. A GET of the former exchanges the token for a short link-bound
    session and redirects to the latter (customers.link_session), logging the opening as
    an access that spends no use; HEAD changes nothing at all.

    CSRF-exempt on purpose: these pages send `Referrer-Policy: no-referrer`, which makes
    browsers post `Origin: null`, which Django's check would refuse. Neither credential can
    ride a forged cross-site form: a POST to the token's URL needs the unguessable token,
    and a POST to the clean URL needs the session's cookie (SameSite=Lax, so never sent
    with a cross-site POST) and the form key only its own page shows."""

    template_name = "consent/self_service.html"

    def resolve(self, request):
        """(link, None) or (None, message): the link named by the token or the session must
        exist, be a consent link, and be usable now (not expired, withdrawn, used up, or of
        an anonymised customer)."""
        link = self.find(request)
        if link is None or link.kind != CustomerLink.Kind.CONSENT or link.contact is None:
            return None, SESSION_OVER if "handle" in self.kwargs else "This link is not valid."
        problem = links.problem_with(link, timezone.now())
        if problem:
            return None, problem
        return link, None

    def find(self, request):
        if "handle" in self.kwargs:
            return links.find_by_id(link_session.session_link_id(request, self.kwargs["handle"]))
        return links.find(self.kwargs["token"])

    def key(self):
        return link_session.form_key(self.kwargs["handle"]) if "handle" in self.kwargs else ""

    def log_use(self, request, link):
        links.use(
            link,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            now=timezone.now(),
        )

    def dead(self, request, message, status=410):
        advice = None
        if message in (SESSION_OVER, FORM_EXPIRED):
            advice = (
                "Open the link in your email again: each opening works for "
                f"{link_session.SESSION_SECONDS // 60} minutes, in a browser that accepts cookies."
            )
        context = {"message": message, "advice": advice}
        return private(render(request, "consent/link_dead.html", context, status=status))

    def page(self, request, contact, saved=False, notice=None, posted=None, seen=None):
        with tenant_scope(contact.entity):
            context = consent_form_context(contact)
            if posted is not None:
                purposes = [field["purpose"] for field in context["fields"]]
                current = services.seen_now(contact, purposes)
                context["fields"] = consent_fields(purposes, current, posted, seen)
        context.update(saved=saved, notice=notice, key=self.key())
        return private(render(request, self.template_name, context))

    def head(self, request, **kwargs):
        """A link checker's HEAD: whether the link works, without a session, a use or a log."""
        _, problem = self.resolve(request)
        return self.dead(request, problem) if problem else private(HttpResponse())

    def get(self, request, **kwargs):
        if "token" in kwargs:
            link = links.find(kwargs["token"])
            if link is None or link.kind != CustomerLink.Kind.CONSENT:
                return self.dead(request, "This link is not valid.")
            return link_session.exchange(request, link, now=timezone.now())
        link, problem = self.resolve(request)
        if problem:
            return self.dead(request, problem)
        return self.page(request, link.contact)

    def post(self, request, **kwargs):
        link, problem = self.resolve(request)
        if problem:
            return self.dead(request, problem)
        if "handle" in kwargs and not link_session.form_key_ok(request, kwargs["handle"]):
            return self.dead(request, FORM_EXPIRED, status=403)
        contact = link.contact
        self.log_use(request, link)
        with tenant_scope(contact.entity):
            privacy = services.privacy_of(contact.entity)
            purposes = services.purposes_for(contact.entity)
            choices, seen = read_choices(request.POST, purposes), read_seen(request.POST, purposes)
            if request.POST.get("policy_version", "") != privacy.policy_version:
                return self.page(
                    request,
                    contact,
                    notice="The privacy policy changed while the page was open. "
                    "Read it and save again; your choices are kept below.",
                    posted=choices,
                    seen=seen,
                )
            # The contact's own choice wins for the boxes they changed.
            services.set_consents(
                contact,
                choices,
                seen=seen,
                clash="apply",
                source=ConsentSource.SELF_SERVICE,
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                policy_version=privacy.policy_version,
            )
        return self.page(request, contact, saved=True)
