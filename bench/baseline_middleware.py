"""Baseline only (bench.baseline_settings): what the product's views need to run at all.

Resolves the tenancy and scopes tenant queries exactly as `accounts.middleware`
does, and exposes the policy rows lazily (the customer selectors read the entity's
restricted roles from them). None of the security gates run.
"""

from django.utils.functional import SimpleLazyObject

from accounts.tenancy import SESSION_ENTITY_KEY, Tenancy, resolve_tenancy, tenant_scope
from security.selectors import load_policies


class ViewPrerequisitesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if not user.is_authenticated:
            request.tenancy = Tenancy()
            return self.get_response(request)
        tenancy = resolve_tenancy(user, request.session.get(SESSION_ENTITY_KEY))
        request.tenancy = tenancy
        request.security_policies = SimpleLazyObject(lambda: load_policies(tenancy))
        if tenancy.entity is None:
            return self.get_response(request)
        with tenant_scope(tenancy.entity):
            return self.get_response(request)
