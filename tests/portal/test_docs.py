"""The repository stands alone: nothing points at files outside it, and the architecture page names every app."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_FILES = ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md", "Makefile", "Dockerfile", "docker-compose.yml",
             "pyproject.toml"]
FOLDERS = ["apps", "portal", "bench", "docs", "templates", "tests"]
TEXT = {".md", ".py", ".html", ".txt", ".toml", ".yml", ".yaml", ".cfg", ".json", ".sh"}
OUTSIDE = ("../" + "shared", "/work/" + "shared")  # split so this file does not match itself


def repository_text_files():
    yield from (ROOT / name for name in TOP_FILES if (ROOT / name).exists())
    for folder in FOLDERS:
        for dirpath, dirnames, filenames in os.walk(ROOT / folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "results", "test-results")]
            yield from (Path(dirpath) / f for f in filenames if Path(f).suffix in TEXT)


def test_nothing_in_the_repository_points_outside_it():
    offenders = sorted(str(path.relative_to(ROOT)) for path in repository_text_files()
                       if any(marker in path.read_text(encoding="utf-8", errors="replace") for marker in OUTSIDE))
    assert not offenders, f"these files refer to a folder outside the repository: {offenders}"


def test_the_architecture_page_names_every_app_and_the_readme_links_it():
    page = (ROOT / "docs" / "architecture.md").read_text()
    apps = sorted(p.name for p in (ROOT / "apps").iterdir() if (p / "apps.py").exists())
    assert apps, "no apps found"
    assert [app for app in apps if f"`apps/{app}`" not in page] == []
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
