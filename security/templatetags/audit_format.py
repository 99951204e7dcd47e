"""Audit event details as people read them: "Newsletter: off → on", not a Python dict."""

from django import template

register = template.Library()


def _text(value):
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_text(item)}" for key, item in value.items())
    return str(value)


def _change(pair):
    if isinstance(pair, list) and len(pair) == 2:
        return f"{_text(pair[0])} → {_text(pair[1])}"
    return _text(pair)


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
            items.append((str(key).replace("_", " "), _text(value)))
    return items
