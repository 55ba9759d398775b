"""The layer contract in pyproject.toml: schemas at the bottom, workers and detectors as
siblings that never import each other, monitor on top (import-linter)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command;"
            " sys.exit(lint_imports_command())",
            "--no-cache",
        ],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_project_keeps_its_layers() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout or "0 broken" in result.stdout


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("schemas", "workers", "detectors", "monitor"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_worker_importing_a_detector_breaks_the_contract(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path, {"detectors/scorer.py": "", "workers/runner.py": "import detectors.scorer\n"}
    )
    result = _lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_schemas_importing_monitor_breaks_the_contract(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"monitor/cli.py": "", "schemas/keys.py": "from monitor import cli\n"})
    result = _lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
