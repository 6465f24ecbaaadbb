"""The package's layers import downward only: the import-linter contract in
pyproject.toml (docs/architecture.md draws the layers). Every subpackage is installed."""
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_layers_import_downward_only():
    # import-linter's lint-imports command, run by this Python (its script may not be on PATH).
    command = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([sys.executable, "-c", command, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken" in out.stdout


def test_every_subpackage_is_installed():
    # setuptools installs only the packages pyproject.toml lists: a new subpackage left out
    # works in an editable checkout and fails to import from a wheel.
    with open(ROOT / "pyproject.toml", "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "annlib").rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
