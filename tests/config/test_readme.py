"""The README's Quick start is what CI and newcomers run: keep its shape."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    serve, test = quick_start_commands()
    assert serve == "./dev serve"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(test)}$", ci, re.M)


def test_every_environment_variable_read_by_the_settings_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    settings = (ROOT / "config" / "settings.py").read_text(encoding="utf-8")
    names = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings))
    names |= set(re.findall(r'redis_url\("([A-Z_]+)"', settings))
    assert names, "no variables found: the pattern is stale"
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"document in README.md: {missing}"
