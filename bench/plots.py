"""Figures: matplotlib (Agg backend, imported only when a chart is drawn), saved as
bench/results/<name>.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.output import RESULTS_DIR


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def save_figure(fig: Any, name: str, results_dir: Path | None = None) -> Path:
    import matplotlib.pyplot as plt

    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
