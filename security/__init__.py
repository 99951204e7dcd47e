"""Security: the audit log now; security policies, lockouts and 2FA build on it."""
