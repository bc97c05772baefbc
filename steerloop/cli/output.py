"""Output helpers shared by the commands: tables, numbers, JSON documents, one-line errors.

Tables use rich (extra ``cli``) when it is installed and the command prints text; otherwise
the same content is printed as aligned plain text. Errors are one line on standard error,
``steerloop COMMAND: message``, never a traceback. ``--json`` documents are strict JSON
(NaN and infinities become ``null``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = [
    "Row",
    "dump_json",
    "error",
    "finite",
    "fmt",
    "fmt_estimate",
    "print_table",
    "rich_available",
]

Row = Sequence[str]


def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; an em dash for None or NaN.

    Examples
    --------
    >>> fmt(0.12345), fmt(None), fmt(float("nan"), 1)
    ('0.123', '—', '—')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def fmt_estimate(value: float | None, stderr: float | None, digits: int = 2) -> str:
    """An estimate with its standard error, ``value ± se`` (the value alone when se is unknown).

    Examples
    --------
    >>> fmt_estimate(0.3312, 0.0041, 3), fmt_estimate(0.5, None), fmt_estimate(None, 0.1)
    ('0.331 ± 0.004', '0.50', '—')
    """
    if value is None or math.isnan(value):
        return "—"
    if stderr is None or not math.isfinite(stderr):
        return fmt(value, digits)
    return f"{value:.{digits}f} ± {stderr:.{digits}f}"


def rich_available() -> bool:
    """Whether rich (the ``cli`` extra) can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _widths(columns: Row, rows: Sequence[Row]) -> list[int]:
    return [max(len(columns[k]), *(len(row[k]) for row in rows)) for k in range(len(columns))]


def _plain_line(cells: Row, widths: Sequence[int]) -> str:
    return "  ".join(
        c.ljust(w) if k == 0 else c.rjust(w)
        for k, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(
    out: TextIO, title: str, columns: Row, rows: Sequence[Row], *, use_rich: bool
) -> None:
    """A table with rich when ``use_rich``, else aligned plain text (first column left)."""
    widths = _widths(columns, rows)
    if use_rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for k, name in enumerate(columns):
            table.add_column(name, justify="left" if k == 0 else "right")
        for row in rows:
            table.add_row(*row)
        width = max(len(title), sum(w + 3 for w in widths) + 1)
        Console(file=out, width=min(width, 200)).print(table)
        return
    out.write(f"{title}\n")
    out.write(_plain_line(columns, widths) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(_plain_line(row, widths) + "\n")
    out.write("\n")


def error(command: str, message: str) -> int:
    """Print ``steerloop COMMAND: message`` on standard error; return exit status 1."""
    print(f"steerloop {command}: {message}", file=sys.stderr)
    return 1


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def dump_json(document: Any) -> None:
    """Write ``document`` as indented strict JSON on standard output."""
    json.dump(finite(document), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
