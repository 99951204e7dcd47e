"""Baseline only: the product's URLs plus a plain FileResponse of the benchmark PDF."""

from django.conf import settings
from django.http import FileResponse
from django.urls import path

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


urlpatterns = [path("bench/file/", plain_file, name="bench-plain-file"), *product_urlpatterns]
