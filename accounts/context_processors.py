from accounts.roles import Capability


def tenancy(request):
    """The header's entity switcher and navigation need the tenancy and capabilities."""
    current = getattr(request, "tenancy", None)
    if current is None:
        return {}
    return {
        "tenancy": current,
        "caps": {cap.name: current.can(cap) for cap in Capability},
    }
