"""One progress bar style for long commands (rich), as a callback the library can call.

The library never prints: it calls `progress(advance, total)`. A bar on stderr keeps stdout
clean for `--json`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def bar(description: str, unit: str = "clips", enabled: bool = True) -> Iterator[Callable[..., None]]:
    if not enabled:
        yield lambda *a, **k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class Rate(TextColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s"

    console = Console(file=sys.stderr)
    cols = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(""),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=console, transient=False) as p:
        task = p.add_task(description, total=None, info="")

        def update(advance: int = 0, total: int | None = None, info: str | None = None) -> None:
            kw = {"advance": advance}
            if total is not None:
                kw["total"] = total
            if info is not None:
                kw["info"] = info
            p.update(task, **kw)

        yield update
