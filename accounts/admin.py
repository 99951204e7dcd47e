"""Django admin for platform operators (is_staff users), not for tenant admins."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import Entity, EntityGroup, GroupMembership, Membership, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


class GroupMembershipInline(admin.TabularInline):
    model = GroupMembership
    extra = 0


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "last_login")
    search_fields = ("email", "full_name")
    inlines = [MembershipInline, GroupMembershipInline]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "usable_password", "password1", "password2"),
            },
        ),
    )
    filter_horizontal = ()
    list_filter = ("is_active", "is_staff")


@admin.register(EntityGroup)
class EntityGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    inlines = [GroupMembershipInline]


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "group")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]
