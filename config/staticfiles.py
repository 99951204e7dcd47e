"""The static files storage with DEBUG off: WhiteNoise's hashed and compressed files."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Content-hashed names from the manifest `collectstatic` writes, with .gz and .br files.

    A name the manifest lacks (collectstatic not run, or run before the file existed) is
    referenced unhashed instead of failing every page with a 500: the page renders, the
    file is a 404, and /readyz reports "static" failed until collectstatic runs.
    """

    def stored_name(self, name):
        try:
            return super().stored_name(name)
        except ValueError:
            return name

    def is_collected(self):
        return bool(self.hashed_files)
