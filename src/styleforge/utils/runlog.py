"""Loss history of an optimisation or training run: CSV log and loss-curve PNG."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.utils.fs import write_bytes_atomic

#: Loss-plot file suffixes and the matplotlib format each writes.
PLOT_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """Return the plot format for ``path``'s suffix; refuse any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise StyleforgeError(f"plot '{path}' needs one of the suffixes {', '.join(PLOT_FORMATS)}")
    return PLOT_FORMATS[suffix]


def load_plotting() -> None:
    """Import matplotlib (Agg backend) now: a long run calls this before it starts, so a
    Ctrl-C never lands in the middle of this slow first import at its first checkpoint.

    The import holds Ctrl-C and SIGTERM until it is done: a KeyboardInterrupt raised
    inside it can be swallowed by NumPy's C code building matplotlib's colormaps, which
    then fails later with an unrelated error instead of stopping."""
    from styleforge.utils.interrupts import deferred_interrupt

    with deferred_interrupt():
        import matplotlib

        matplotlib.use("Agg")  # no display needed; must precede pyplot's import
        import matplotlib.pyplot  # noqa: F401


@dataclass
class LossHistory:
    """Rows of named figures, one per logged step.

    Attributes:
        columns: column names; ``step`` first, then losses and other figures.
        rows: the logged rows, each a dict with (a subset of) ``columns``.
    """

    columns: tuple[str, ...]
    rows: list[dict[str, float]] = field(default_factory=list)

    def append(self, **values: float) -> None:
        """Add a row (unknown names are an error, missing ones are left blank)."""
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}")
        self.rows.append(dict(values))

    def column(self, name: str) -> list[float]:
        """Return one column's values over the rows that have it."""
        return [row[name] for row in self.rows if name in row]

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the history as CSV (header + rows), atomically; returns the path."""
        return write_bytes_atomic(path, self.csv_bytes())

    def csv_bytes(self) -> bytes:
        """The history as CSV (header + rows), UTF-8."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(self.columns))
        writer.writeheader()
        writer.writerows(self.rows)
        return text.getvalue().encode("utf-8")

    def plot(self, path: str | os.PathLike[str], curves: tuple[str, ...], title: str = "") -> Path:
        """Draw the non-zero ``curves`` against ``step`` on a log scale (PNG, PDF or SVG
        by the suffix), atomically."""
        return write_bytes_atomic(path, self.plot_bytes(path, curves, title))

    def plot_bytes(self, path: str | os.PathLike[str], curves: tuple[str, ...], title: str = "") -> bytes:
        """The plot :meth:`plot` draws, in the format of ``path``'s suffix."""
        fmt = check_plot_path(path)
        load_plotting()
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        try:
            steps = self.column("step")
            for name in curves:
                values = self.column(name)
                if values and len(values) == len(steps) and max(values) > 0:  # an all-zero term (e.g. tv off) is noise
                    ax.plot(steps, values, label=name)
            if ax.lines:
                ax.set_yscale("log", nonpositive="mask")  # losses span decades; zeros (step 1 content) are left out
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
            if title:
                ax.set_title(title)
            ax.grid(True, alpha=0.3)
            ax.legend()
            fig.tight_layout()
            encoded = io.BytesIO()
            fig.savefig(encoded, format=fmt)
        finally:
            plt.close(fig)
        return encoded.getvalue()
