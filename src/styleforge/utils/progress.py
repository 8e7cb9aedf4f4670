"""Progress reporting: a tqdm bar on a terminal, plain lines when output is redirected."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Progress:
    """A progress counter that draws a bar on a TTY and prints sparse lines otherwise.

    Use as a context manager; call :meth:`update` with the amount done since the last
    call and :meth:`set_postfix` with current figures (e.g. losses).

    Args:
        total: the amount that means done, or ``None`` when unknown.
        desc: a short label.
        unit: ``B`` for bytes (shown scaled), or a word such as ``it``.
        stream: where to write (stderr by default).
        enabled: ``False`` silences it entirely.
        lines: plain-line mode reports every this fraction of ``total`` (default 10%).
    """

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool = True,
        lines: float = 0.1,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0.0
        self._step = (total or 0) * lines
        self._next_report = self._step
        self._postfix = ""
        self._bar: Any = None
        if enabled and _is_tty(self.stream):
            from tqdm import tqdm

            scale = unit == "B"
            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000, file=self.stream, dynamic_ncols=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, amount: float = 1) -> None:
        """Advance by ``amount`` and redraw or print a line when due."""
        self.done += amount
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(amount)
        elif self.total and self.done >= self._next_report:
            self._next_report += self._step
            self._print_line()

    def set_postfix(self, text: str) -> None:
        """Show ``text`` (e.g. current losses) after the counter."""
        self._postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _print_line(self) -> None:
        done = _format_amount(self.done, self.unit)
        if self.total:
            total = _format_amount(self.total, self.unit)
            line = f"{self.desc}: {done} / {total} ({100 * self.done / self.total:.0f}%)"
        else:
            line = f"{self.desc}: {done}"
        if self._postfix:
            line += f" {self._postfix}"
        print(line, file=self.stream, flush=True)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _format_amount(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    return f"{value:.0f} {unit}"
