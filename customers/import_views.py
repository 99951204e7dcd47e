"""CSV import of customers: upload -> preview -> confirm (customers.csv_import does the work).

The preview's validated rows wait in the session under a random token (one pending import
per session, capped in size) until the user confirms; the confirmation re-plans them
against the database and writes all or nothing in the current entity.
"""

import json
import logging
import secrets
import time

from django import forms
from django.contrib import messages
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import MemberRequiredMixin
from accounts.roles import Capability
from customers import csv_import, services
from customers.selectors import request_scope

logger = logging.getLogger(__name__)

SESSION_KEY = "customers.csv_import"
PENDING_SECONDS = 60 * 60
NOTHING_IMPORTED = "Fix the file and upload it again; nothing was imported."


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        allow_empty_file=True,  # csv_import.read_csv says "The file is empty."
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
        help_text="At most 2 MB and 5,000 rows. Comma, semicolon or tab separated.",
        error_messages={"required": "Choose a CSV file to upload."},
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > csv_import.MAX_BYTES:
            raise forms.ValidationError(csv_import.size_message(upload.size))
        return upload


class ImportMixin(MemberRequiredMixin):
    required_capability = Capability.EDIT_CUSTOMERS

    def upload_page(self, form, status=200):
        context = {"form": form, "columns": csv_import.COLUMNS}
        return render(self.request, "customers/import_upload.html", context, status=status)


class CustomerImportView(ImportMixin, View):
    """Upload a file and see, row by row, what importing it would do."""

    def get(self, request):
        return self.upload_page(ImportUploadForm())

    def post(self, request):
        form = ImportUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.upload_page(form)
        upload = form.cleaned_data["file"]
        data = b"".join(upload.chunks())
        entity = request.tenancy.entity
        parsed = csv_import.read_csv(data)
        plan = csv_import.preview(parsed.rows, entity, scope=request_scope(request))
        problems = list(parsed.problems)
        token = None
        request.session.pop(SESSION_KEY, None)
        if not problems and plan.ok:
            pending = {
                "token": secrets.token_urlsafe(24),
                "entity": entity.pk,
                "user": request.user.pk,
                "created": time.time(),
                "rows": [row.to_list() for row in parsed.rows],
                "expected": plan.signature(),
            }
            if len(json.dumps(pending)) > csv_import.MAX_SESSION_CHARS:
                problems.append(
                    "The file is too large to keep until you confirm the import. Split it "
                    "into smaller files."
                )
            else:
                request.session[SESSION_KEY] = pending
                token = pending["token"]
        context = {
            "form": ImportUploadForm(),
            "filename": upload.name,
            "parsed": parsed,
            "plan": plan,
            "counts": plan.counts,
            "problems": problems,
            "token": token,
            "nothing_imported": NOTHING_IMPORTED,
        }
        return render(request, "customers/import_preview.html", context)


class CustomerImportConfirmView(ImportMixin, View):
    """Import the previewed rows: all of them in one transaction, or none."""

    http_method_names = ["post"]

    def refuse(self, message):
        messages.error(self.request, message)
        return redirect("customer-import")

    def post(self, request):
        pending = request.session.get(SESSION_KEY)
        token = request.POST.get("token", "")
        entity = request.tenancy.entity
        if (
            not isinstance(pending, dict)
            or not token
            or not secrets.compare_digest(str(pending.get("token", "")), token)
            or pending.get("user") != request.user.pk
        ):
            return self.refuse(
                "This import preview is no longer available (it was already imported, "
                "replaced by another upload, or has expired). Nothing was imported; upload "
                "the file again."
            )
        if pending.get("entity") != entity.pk:
            request.session.pop(SESSION_KEY, None)
            return self.refuse(
                "This preview was made in another entity. Nothing was imported; upload the "
                f"file again while working in {entity.name}."
            )
        if time.time() - float(pending.get("created", 0)) > PENDING_SECONDS:
            request.session.pop(SESSION_KEY, None)
            return self.refuse(
                "This import preview has expired. Nothing was imported; upload the file again."
            )
        # The preview is used up whatever happens next: a second click cannot import twice.
        request.session.pop(SESSION_KEY, None)
        try:
            rows = [csv_import.Row.from_list(item) for item in pending["rows"]]
            counts = services.import_customers(
                rows,
                entity,
                expected=pending["expected"],
                scope=request_scope(request),
                actor=request.user,
                request=request,
            )
        except csv_import.ImportRefused as refusal:
            return self.refuse(str(refusal))
        except IntegrityError:
            logger.warning("CSV import of %s rows hit a conflict", len(pending.get("rows", [])))
            return self.refuse(
                "Someone changed the same customers at the same moment, so the import was "
                "stopped. Nothing was imported; upload the file again."
            )
        except Exception:  # all or nothing: the transaction is rolled back; say so plainly
            logger.exception("CSV import failed")
            return self.refuse(
                "The import failed and nothing was imported. Try again; if it keeps failing, "
                "contact support."
            )
        messages.success(request, csv_import.success_message(counts))
        return redirect("customer-list")
