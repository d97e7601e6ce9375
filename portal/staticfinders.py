"""Serve vendor assets straight from installed packages (no CDN, nothing copied into the repo)."""

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage


def _vendor_files() -> dict[str, Path]:
    import plotly

    return {"vendor/plotly.min.js": Path(plotly.__file__).parent / "package_data" / "plotly.min.js"}


class VendorFinder(BaseFinder):
    def find(self, path, find_all=False, **kwargs):
        found = _vendor_files().get(path)
        if found is None:
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for name, file in _vendor_files().items():
            storage = FileSystemStorage(location=str(file.parent))
            storage.prefix = str(Path(name).parent)
            yield file.name, storage
