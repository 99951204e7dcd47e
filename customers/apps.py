from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"

    def ready(self):
        from customers import receivers  # noqa: F401  (drops cached collector choices)
