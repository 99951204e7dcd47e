"""Customers of an entity: the first tenant-owned data, reached only through its scope."""
