"""Runs each entry of the one beat schedule (config/celery.py) once, for cron-style use.

The Celery app is the one config registers as current (config/__init__.py), so this
command reads the schedule without importing the layer above it."""

from celery import current_app as app
from django.core.management.base import BaseCommand, CommandError

from accounts.tenancy import system_code


class Command(BaseCommand):
    help = "Run every periodic job of the beat schedule once, in this process."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="NAME",
            help="Run only this schedule entry (repeatable).",
        )

    def handle(self, *args, only, **options):
        app.loader.import_default_modules()
        schedule = app.conf.beat_schedule
        unknown = sorted(set(only) - set(schedule))
        if unknown:
            raise CommandError(
                f"Unknown job(s): {', '.join(unknown)}. Known: {', '.join(sorted(schedule))}."
            )
        failed = False
        for name, entry in schedule.items():
            if only and name not in only:
                continue
            task = app.tasks[entry["task"]]
            with system_code():
                result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
            if result.successful():
                self.stdout.write(f"{name}: ok ({result.result!r})")
            else:
                failed = True
                self.stderr.write(f"{name}: FAILED ({result.result!r})")
        if failed:
            raise CommandError("At least one periodic job failed.")
