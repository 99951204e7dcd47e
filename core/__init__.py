"""Framework helpers every app may use: HTTP, forms, database, the PostgreSQL backend, PDF.

The bottom layer: it imports Django and libraries, never an app of the product."""
