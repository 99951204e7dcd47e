"""Baseline only: the product's URLs plus a plain FileResponse of the benchmark PDF (bare,
and after one committed statement that counts and logs a use), a
sign-in POST refused without any work (the floor of the refused sign-in scenario) and
Django's own LoginView (the reference of the successful sign-in scenario)."""

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.http import FileResponse, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as product_urlpatterns

# Where the document-link scenario stores its 200 KB PDF (under MEDIA_ROOT).
BENCH_PDF_NAME = "bench/bench-invoice-200k.pdf"


def plain_file(request):
    """Django's FileResponse of the same file the link serves, with no link checks."""
    return FileResponse(
        open(settings.MEDIA_ROOT / BENCH_PDF_NAME, "rb"),  # noqa: SIM115 -- closed by Django
        as_attachment=True,
        filename="invoice.pdf",
        content_type="application/pdf",
    )


def counted_file(request, link_id):
    """The same FileResponse after the least a counted, logged download must do: one
    committed statement that adds a use to a link row and writes its access-log row
    (autocommit, as the link's own statement runs), with none of the link's checks."""
    from django.db import connection

    from customers.models import CustomerLink, LinkUse

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH counted AS (
                UPDATE {quote(CustomerLink._meta.db_table)} SET uses = uses + 1
                WHERE id = %(link)s RETURNING id, entity_id
            )
            INSERT INTO {quote(LinkUse._meta.db_table)}
                (entity_id, link_id, used_at, ip, user_agent)
            SELECT entity_id, id, now(), %(ip)s::inet, %(agent)s FROM counted""",
            {
                "link": link_id,
                "ip": request.META.get("REMOTE_ADDR"),
                "agent": request.META.get("HTTP_USER_AGENT", "")[:300],
            },
        )
    return plain_file(request)


@csrf_exempt
def refuse_at_once(request):
    """Reads the posted username, as the sign-in does, and answers 429."""
    request.POST.get("username")
    return HttpResponse(status=429)


urlpatterns = [
    path("bench/file/", plain_file, name="bench-plain-file"),
    path("bench/counted-file/<int:link_id>/", counted_file, name="bench-counted-file"),
    path("bench/refuse/", refuse_at_once, name="bench-refuse"),
    # Django's LoginView as shipped (AuthenticationForm); bench.scenarios runs it with
    # ModelBackend only and no receivers but Django's own.
    path(
        "bench/django-login/",
        LoginView.as_view(template_name="registration/login.html"),
        name="bench-django-login",
    ),
    *product_urlpatterns,
]
