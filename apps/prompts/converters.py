"""`<promptname:name>` in URLs: a prompt name with its slashes, never swallowing a reserved segment or "-"."""

from apps.prompts.models import NAME_SEGMENT, RESERVED_SEGMENTS

_RESERVED = "|".join(RESERVED_SEGMENTS)
_SEGMENT = rf"(?!(?:{_RESERVED})(?:/|$)){NAME_SEGMENT}"


class PromptNameConverter:
    regex = rf"{_SEGMENT}(?:/{_SEGMENT})*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
