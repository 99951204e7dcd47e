"""View mixins: the only way a view reaches tenant data or checks a role.

Object views subclass `ScopedObjectMixin`; the tenant-isolation test walks the URL
configuration and requires it of every view that takes an object id.
"""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.shortcuts import get_object_or_404, render


class MemberRequiredMixin:
    """Logged in, working in an entity, and (optionally) holding a capability there."""

    required_capability = None

    def access_refused(self, request):
        """The answer for a request that may not go on, or None."""
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if request.tenancy.entity is None:
            return render(request, "accounts/no_entity.html", status=403)
        return None

    def check_capability(self, request):
        if self.required_capability and not request.tenancy.can(self.required_capability):
            raise PermissionDenied("Your role does not give access to this page.")

    def dispatch(self, request, *args, **kwargs):
        refused = self.access_refused(request)
        if refused is not None:
            return refused
        self.check_capability(request)
        return super().dispatch(request, *args, **kwargs)


class ScopedObjectMixin(MemberRequiredMixin):
    """A view of one object, looked up only among what the request may see.

    Objects outside that set -- another entity's, or hidden by role -- are a 404, never a
    403, so ids do not leak. Visibility is checked before the role's capability, so an
    object the user cannot see is a 404 even on pages their role could not use anyway.
    """

    model = None

    def get_scoped_queryset(self):
        if self.model is None:
            raise ImproperlyConfigured(f"{type(self).__name__} must set `model`.")
        # The model's TenantManager filters to the request's entity (accounts.tenancy).
        objects = self.model.objects.all()
        # Customer-owned models offer visible_to(scope): their rows are filtered by which
        # customers the user may see, as the request resolved it (request.visibility, set
        # by customers.middleware). A view cannot forget it.
        if hasattr(objects, "visible_to"):
            objects = objects.visible_to(self.request.visibility)
        return objects

    def dispatch(self, request, *args, **kwargs):
        refused = self.access_refused(request)
        if refused is not None:
            return refused
        self._scoped_object = get_object_or_404(self.get_scoped_queryset(), pk=kwargs["pk"])
        self.check_capability(request)
        refused = self.refuse_object(self._scoped_object)
        if refused is not None:
            return refused
        return super(MemberRequiredMixin, self).dispatch(request, *args, **kwargs)

    def refuse_object(self, obj):
        """A response when this page may not act on `obj` (after the checks above), or None."""
        return None

    def get_object(self, queryset=None):
        cached = getattr(self, "_scoped_object", None)
        if cached is not None:
            return cached
        return get_object_or_404(self.get_scoped_queryset(), pk=self.kwargs["pk"])
