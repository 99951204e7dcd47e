"""Hosted documents and expiring customer links (models arrive with that work)."""
