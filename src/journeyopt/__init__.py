"""journeyopt: learn contact policies that grow long-term customer value.

Logs in -> weekly customer panel -> simulator -> agents -> evaluation -> serving.
See ``docs/architecture.md`` for the map of the package.
"""

from __future__ import annotations

__version__ = "0.1.0"
