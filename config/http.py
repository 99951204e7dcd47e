"""Small helpers for answers and input shared by several apps."""


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
