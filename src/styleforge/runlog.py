"""Loss history of an optimisation or training run: CSV log and loss-curve PNG."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from styleforge.errors import StyleforgeError
from styleforge.fsutil import atomic_path


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
        try:
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.columns))
                writer.writeheader()
                writer.writerows(self.rows)
        except OSError as exc:
            raise StyleforgeError(f"cannot write log '{path}': {exc}") from None
        return Path(path)

    def plot(self, path: str | os.PathLike[str], curves: tuple[str, ...], title: str = "") -> Path:
        """Draw the non-zero ``curves`` against ``step`` on a log scale to a PNG, atomically."""
        import matplotlib

        matplotlib.use("Agg")  # no display needed; must precede pyplot's import
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
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png")
        except OSError as exc:
            raise StyleforgeError(f"cannot write plot '{path}': {exc}") from None
        finally:
            plt.close(fig)
        return Path(path)
