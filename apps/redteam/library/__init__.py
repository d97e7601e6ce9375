"""The red-team probe library: versioned JSONL files in this folder (see README.md).

A released file (`probes-v1.jsonl`, ...) never changes; a new version is a new file. The loader and the
validation live in `apps.redteam.probes`; this package only says where the files are.
"""

from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = LIBRARY_DIR / "probe.schema.json"


def library_path(version: str) -> Path:
    return LIBRARY_DIR / f"probes-{version}.jsonl"


def available_versions() -> list[str]:
    """Released versions, oldest first ("v1", "v2", ...)."""
    names = (path.stem.removeprefix("probes-") for path in LIBRARY_DIR.glob("probes-v*.jsonl"))
    return sorted((name for name in names if name[1:].isdigit()), key=lambda name: int(name[1:]))
