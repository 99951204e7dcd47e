"""Resolves the request's entity once and scopes all tenant queries to it."""

from accounts.tenancy import SESSION_ENTITY_KEY, Tenancy, resolve_tenancy, tenant_scope


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            request.tenancy = Tenancy()
            return self.get_response(request)
        tenancy = resolve_tenancy(user, request.session.get(SESSION_ENTITY_KEY))
        request.tenancy = tenancy
        if tenancy.entity is None:
            # No entity: tenant-scoped queries stay disabled and raise if attempted.
            return self.get_response(request)
        if request.session.get(SESSION_ENTITY_KEY) != tenancy.entity.pk:
            request.session[SESSION_ENTITY_KEY] = tenancy.entity.pk
        with tenant_scope(tenancy.entity):
            return self.get_response(request)
