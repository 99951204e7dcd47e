"""Queuing an email: its text (and HTML, if any) rendered from templates under
templates/emails/, a row of an outbox table created in the caller's transaction, and the
row handed to the worker once that transaction commits. Nothing is sent here."""

from django.template.loader import render_to_string

from core.tasks import dispatch_after_commit


def queue(model, *, to, subject, text_template, context, html_template=None, **fields):
    """Queue an email in the outbox table `model`; `fields` fill that table's own columns
    (its foreign keys, kind, ...). Returns the row."""
    email = model._default_manager.create(
        to=to,
        subject=subject,
        text_body=render_to_string(text_template, context),
        html_body=render_to_string(html_template, context) if html_template else "",
        **fields,
    )
    dispatch_after_commit(email)
    return email
