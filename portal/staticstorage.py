"""Static files: hashed names, gzip copies (brotli too when installed) and far-future caching through whitenoise.

Hashed names also under DEBUG, so `make run` serves what production serves (its setup runs collectstatic).
A file that was not collected (unit tests render pages without collecting) keeps its plain name instead of
raising, and whitenoise then serves it with a short max-age.
"""

from django.contrib.staticfiles.storage import StaticFilesStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class PortalStaticFilesStorage(CompressedManifestStaticFilesStorage):
    manifest_strict = False

    def url(self, name, force=False):
        try:
            return super().url(name, force=True)
        except ValueError:  # not collected yet
            return StaticFilesStorage.url(self, name)
