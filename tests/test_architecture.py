"""The package's layers import downward only: the import-linter contract in
pyproject.toml (docs/architecture.md draws the layers)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layers_import_downward_only():
    lint_imports = Path(sys.executable).parent / "lint-imports"  # import-linter's command, beside this Python
    out = subprocess.run([str(lint_imports), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken" in out.stdout
