"""The dashboard page: the status report (shared/status.py) drawn for a person, as one HTML string.

Pure: the status dict in, HTML out, no I/O, so a test can render any state. Server-rendered with no
build step and nothing from a CDN: the chart is inline SVG, the two buttons a few lines of inline
script allowed by a per-response nonce (see :func:`content_security_policy`). Everything that came
from data (reasons, ids, URLs, names in any script) is escaped here and nowhere else.
"""

from shared.dashboard.page import content_security_policy, render

__all__ = ["content_security_policy", "render"]
