"""Small helpers for answers and input shared by several apps."""

from django.conf import settings


def site_url(path):
    """An absolute URL on the product's one configured base (settings.SITE_URL) for `path`
    (from reverse()): what emailed links use, whatever Host a request came with."""
    return settings.SITE_URL + path


def private(response):
    """Headers for pages and files reached through customer links: not cached, not
    indexed, and no Referer leaking the link's token to other sites."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def parse_int(value):
    """An int from form input, or None for anything else."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def ask_to_confirm(request, *, question, consequence, button, cancel_url):
    """The page that asks before an irreversible POST is carried out; the form posts the
    same address again with confirm=yes. None when this POST already says yes."""
    from django.shortcuts import render

    if request.POST.get("confirm") == "yes":
        return None
    context = {
        "question": question,
        "consequence": consequence,
        "button": button,
        "cancel_url": cancel_url,
    }
    return render(request, "confirm_delete.html", context)
