"""The layer contract (pyproject.toml, [tool.importlinter]): every import runs down the
layers, checked by import-linter on every test run, and every app of the product sits in
a layer, so a new app or a new upward import fails here."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]

# Imports inside a function that stay there, each for a reason other than a circle.
ALLOWED_INLINE = {
    # AppConfig.ready(): Django's documented place to connect receivers and load what
    # needs the app registry.
    ("security/apps.py", "security.receivers"),
    ("customers/apps.py", "customers.receivers"),
    ("documents/apps.py", "documents.consent_check"),
    # The session engine is imported by Django before the app registry is ready.
    ("accounts/sessions.py", "accounts.models"),
    ("accounts/models.py", "accounts.sessions"),
    # Password validators are imported while settings load, before the models exist.
    ("security/passwords.py", "security.models"),
}


def test_every_import_runs_down_the_layers():
    result = subprocess.run(
        [Path(sys.executable).with_name("lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_app_of_the_product_is_in_a_layer():
    layered = next(c for c in CONFIG["contracts"] if c["type"] == "layers")["layers"]
    ours = {app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()}
    assert ours <= set(layered), f"not in the layer contract: {sorted(ours - set(layered))}"
    assert set(CONFIG["root_packages"]) == set(layered)
    assert layered[0] == "config" and layered[-1] == "core"


def _inline_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    for alias in inner.names:
                        # `from security import receivers` imports security.receivers.
                        yield f"{inner.module}.{alias.name}", inner.module, inner.lineno


def test_no_import_inside_a_function_dodges_a_circle():
    packages = set(CONFIG["root_packages"])
    found = []
    for package in sorted(packages):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            relative = path.relative_to(ROOT).as_posix()
            for name, module, line in _inline_imports(path):
                allowed = {(relative, name), (relative, module)} & ALLOWED_INLINE
                if module.split(".")[0] in packages and not allowed:
                    found.append(f"{relative}:{line} imports {name}")
    assert not found, "move the code, not the import:\n" + "\n".join(found)
