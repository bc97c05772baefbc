"""A progress bar for long commands and scripts, silent where it would only add noise.

:class:`ProgressBar` draws with rich (extra ``cli``: ``pip install 'steerloop[cli]'``) on
standard error when that stream is a terminal. It prints **nothing** when the stream is not a
terminal (piped, redirected, captured by a test or CI), when rich is not installed, or when it
is disabled (the commands disable it with ``--quiet`` and ``--json``). The bar is transient:
it is erased when closed, so it never mixes with the command's output.

Examples
--------
>>> import io
>>> with ProgressBar(3, "steps", stream=io.StringIO()) as bar:  # not a terminal: silent
...     for _ in range(3):
...         bar.advance()
>>> bar.active, bar.completed
(False, 3.0)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Progress of ``total`` units of work (steps, bytes…), shown on a terminal only.

    Parameters
    ----------
    total : float
        Units of work in all.
    description : str
        Text left of the bar (updated by :meth:`advance` and :meth:`update`).
    enabled : bool
        False never draws (``--quiet``, ``--json``).
    stream : text stream, optional
        Where to draw (default: standard error at construction time).
    """

    def __init__(
        self,
        total: float,
        description: str = "",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self._total = float(total)
        self._completed = 0.0
        self._rich: Any = None
        self._task: Any = None
        out = sys.stderr if stream is None else stream
        if not (enabled and _is_terminal(out)):
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:  # the cli extra is not installed: no bar
            return
        self._rich = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=Console(file=out),
            transient=True,
        )
        self._task = self._rich.add_task(description, total=self._total)
        self._rich.start()

    @property
    def active(self) -> bool:
        """Whether a bar is being drawn."""
        return self._rich is not None

    @property
    def completed(self) -> float:
        """Units of work done so far."""
        return self._completed

    def update(self, completed: float, *, description: str | None = None) -> None:
        """Set the work done to ``completed`` (and the description, if given)."""
        self._completed = float(completed)
        if self._rich is not None:
            fields: dict[str, Any] = {"completed": self._completed}
            if description is not None:
                fields["description"] = description
            self._rich.update(self._task, **fields)

    def advance(self, amount: float = 1.0, *, description: str | None = None) -> None:
        """Add ``amount`` units of work done."""
        self.update(self._completed + amount, description=description)

    def step_callback(self) -> Callable[[str, int, int], None]:
        """A ``progress(name, done, total)`` callback (as ``run_experiment`` calls it) that
        advances the bar by one step per call and shows ``name``."""

        def progress(name: str, done: int, total: int) -> None:
            self.advance(description=f"{name} {done}/{total}")

        return progress

    def close(self) -> None:
        """Erase the bar (idempotent)."""
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
