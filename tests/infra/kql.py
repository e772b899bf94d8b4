"""The alert queries in infra/app/alerts/*.kql, read the way Azure Monitor runs them on one log line.

Each query keeps the rows whose ``message startswith "<prefix>"`` and reads its columns with
``extract(@"<regex>", 1, message)``. ``AlertQuery.read`` does the same in Python, so a test can put
a line the app really wrote through the deployed query: the regexes are simple enough that RE2
(Kusto) and Python's ``re`` read them alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.infra import INFRA

ALERT_QUERIES = INFRA / "app" / "alerts"

_PREFIX = re.compile(r'\|\s*where message startswith "([^"]+)"')
_COLUMN = re.compile(r'(\w+)\s*=\s*(toint\()?extract\(@"([^"]+)",\s*1,\s*message\)')


@dataclass(frozen=True)
class AlertQuery:
    path: Path
    text: str
    prefix: str
    columns: dict[str, tuple[re.Pattern[str], bool]]  # column -> (regex, read as int)

    def read(self, message: str) -> dict[str, str | int] | None:
        """The columns the query gives this line, or None if the query skips it (as its ``where`` would)."""
        if not message.startswith(self.prefix):
            return None
        row: dict[str, str | int] = {}
        for name, (pattern, as_int) in self.columns.items():
            match = pattern.search(message)
            if match is None:
                return None  # isnotnull / isnotempty drop it
            row[name] = int(match[1]) if as_int else match[1]
        return row


def parse(path: Path) -> AlertQuery:
    text = path.read_text()
    prefixes = _PREFIX.findall(text)
    assert len(prefixes) == 1, f'{path}: expected one `where message startswith "..."`, found {prefixes}'
    columns = {name: (re.compile(regex), bool(as_int)) for name, as_int, regex in _COLUMN.findall(text)}
    return AlertQuery(path, text, prefixes[0], columns)


@cache
def queries() -> dict[str, AlertQuery]:
    """By file stem: poison, failures, no-poll."""
    return {path.stem: parse(path) for path in sorted(ALERT_QUERIES.glob("*.kql"))}
