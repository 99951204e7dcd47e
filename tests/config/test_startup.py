"""What a web worker loads at start: fpdf2 and its font tables (about 20 MB) wait for the
first PDF, so every gunicorn worker does not carry them (the benchmark's worker_peak_rss)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_loads_no_pdf_library_until_a_pdf_is_made():
    code = (
        "import django, sys; django.setup(); import config.urls; "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "print('fpdf' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
