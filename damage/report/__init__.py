"""What a person reads: the chips (:mod:`.chips`), the offline HTML report (:mod:`.html`) and the label page (:mod:`.labelpage`)."""

from __future__ import annotations

from typing import Any

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    # damage.report.write_report without importing Jinja2 with every damage.report.chips
    if name == "write_report":
        from damage.report.html import write_report

        return write_report
    raise AttributeError(f"module 'damage.report' has no attribute {name!r}")
