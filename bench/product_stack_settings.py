"""The product's own settings with the benchmark's routes in front (bench.baseline_urls).

The document-link scenario's second baseline (`/bench/counted-file/<id>/`) runs here:
behind the product's whole middleware stack, with the same persistent connections, so
that the only difference from the product's `/l/<token>/` is the link's checks. Nothing
else changes. Never use this module to serve the product.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
