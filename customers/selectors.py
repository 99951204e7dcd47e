"""Which customers a user sees: the one place every read of customer data goes through.

Lists, search, the card and its tabs, invoices, contacts, secrets, exports, counts and the
dashboard all start from `visible_customers(request)` (or `customer_scope(...)` with plain
values), so a role restriction cannot be forgotten by one page.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, Exists, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.roles import RESTRICTABLE_ROLES, Role
from customers.models import AccessGroup, Customer, CustomerAssignment, Invoice, Secret


@dataclass(frozen=True)
class Scope:
    """Why a user sees what they see: 'all', 'managed' (as collector) or 'assigned'."""

    kind: str
    user_id: int
    role: Role


def scope_for(role, user_id, restricted_roles):
    """Pure: the visibility rule for a role under the entity's restrictions."""
    role = Role(role)
    if role.value in set(restricted_roles or ()) and role in RESTRICTABLE_ROLES:
        return Scope(RESTRICTABLE_ROLES[role], user_id, role)
    return Scope("all", user_id, role)


def restricted_roles_of(request):
    """The current entity's restricted roles, from the policy rows the request loaded."""
    entity = request.tenancy.entity
    for policy in request.security_policies:
        if policy.entity_id == entity.pk:
            return policy.restricted_roles or []
    return []


def request_scope(request):
    return scope_for(request.tenancy.role, request.user.pk, restricted_roles_of(request))


def customer_scope(queryset, scope):
    """Filter a Customer queryset (already tenant-scoped) by `scope`."""
    if scope.kind == "managed":
        return queryset.filter(collector_id=scope.user_id)
    if scope.kind == "assigned":
        return queryset.filter(
            Exists(
                CustomerAssignment.objects.filter(customer_id=OuterRef("pk"), user_id=scope.user_id)
            )
        )
    return queryset


def visible_customers(request):
    return customer_scope(Customer.objects.all(), request_scope(request))


def with_balance(customers):
    """Annotate each customer's ledger balance (what is still outstanding), one subquery."""
    outstanding = (
        Invoice.objects.filter(customer_id=OuterRef("pk"))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum(F("amount") - F("amount_paid")))
        .values("total")
    )
    money = DecimalField(max_digits=16, decimal_places=2)
    return customers.annotate(
        balance=Coalesce(
            Subquery(outstanding, output_field=money), Value(Decimal("0")), output_field=money
        )
    )


def ledger_balance(customer):
    total = customer.invoices.aggregate(total=Sum(F("amount") - F("amount_paid")))["total"]
    return total or Decimal("0")


def why_visible(scope, customer):
    """A sentence for the card: why this user sees this customer."""
    if scope.kind == "managed":
        return f"You see this customer because you are its collector ({scope.role.label} role)."
    if scope.kind == "assigned":
        return f"You see this customer because it is assigned to you ({scope.role.label} role)."
    return f"Your role ({scope.role.label}) sees every customer of this entity."


def readable_secrets(customer, user):
    """Secrets of `customer` that `user` may read: those shared with a group they are in."""
    my_groups = AccessGroup.objects.filter(members=user).values("pk")
    return Secret.objects.filter(customer=customer).filter(
        Exists(
            Secret.groups.through.objects.filter(
                secret_id=OuterRef("pk"), accessgroup_id__in=my_groups
            )
        )
    )
