"""Words shown to people, in Chinese and in English: one type, one order, for the whole project.

Every message table in the project (the core's reasons, the verifier's verdicts, the issuer's errors, the
kiosk's screens) holds ``Text(zh=..., en=...)``: Chinese first, as people read it here, and named so that no
table can hold the two the other way round.
"""

from __future__ import annotations

from typing import NamedTuple


class Text(NamedTuple):
    """A message in Chinese and in English; a template when it names ``{fields}``."""

    zh: str
    en: str

    def format(self, **fields: object) -> Text:
        """Both languages filled in. A field that is itself a ``Text`` gives each language its own words.

        Raises: KeyError: a field the template names is missing.
        """
        zh = {k: v.zh if isinstance(v, Text) else v for k, v in fields.items()}
        en = {k: v.en if isinstance(v, Text) else v for k, v in fields.items()}
        return Text(self.zh.format(**zh), self.en.format(**en))
