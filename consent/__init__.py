"""GDPR consents, self-service, consent form and anonymisation (models arrive with that work)."""
