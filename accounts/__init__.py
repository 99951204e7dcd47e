"""Tenancy and people: multi-entity accesses, entities, users, memberships and roles."""
