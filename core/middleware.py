"""`Cross-Origin-Resource-Policy` on every answer (settings.CROSS_ORIGIN_RESOURCE_POLICY), so
another site cannot load the product's pages, files or downloads as its own resources.

Hand-written: Django sets the opener policy (SECURE_CROSS_ORIGIN_OPENER_POLICY) but not
this header, and it is one line of work."""

from django.conf import settings


class CrossOriginResourcePolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = getattr(settings, "CROSS_ORIGIN_RESOURCE_POLICY", "same-origin")

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Cross-Origin-Resource-Policy", self.policy)
        return response
