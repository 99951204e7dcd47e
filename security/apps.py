from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "security"

    def ready(self):
        from security import receivers  # noqa: F401  (connects Django's auth signals)
