"""Audit event details as people read them: "Newsletter: off → on", not a Python dict."""

from django import template

from security.audit import readable

register = template.Library()


def _change(pair):
    if isinstance(pair, list) and len(pair) == 2:
        return f"{readable(pair[0])} → {readable(pair[1])}"
    return readable(pair)


@register.filter
def audit_items(data):
    """[(label, text)] of an event's `data`. A `changes` mapping of {field: [old, new]}
    becomes one item per field."""
    items = []
    for key, value in (data or {}).items():
        if key == "changes" and isinstance(value, dict):
            items += [
                (str(field).replace("_", " "), _change(pair)) for field, pair in value.items()
            ]
        else:
            items.append((str(key).replace("_", " "), readable(value)))
    return items
