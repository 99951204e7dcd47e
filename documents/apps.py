from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"

    def ready(self):
        from documents import consent_check

        # Fail at start, not at the first email, when the consent check is not configured.
        consent_check._check()
