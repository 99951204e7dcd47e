"""The request's visibility scope (which customers the user may see), as
`request.visibility`: resolved on first use, once per request. The object-view mixin
(accounts.access.ScopedObjectMixin) filters customer-owned objects by it."""

from functools import partial

from django.utils.functional import SimpleLazyObject

from customers.selectors import request_scope


class VisibilityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.visibility = SimpleLazyObject(partial(request_scope, request))
        return self.get_response(request)
