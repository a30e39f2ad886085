"""The book's figure style (seaborn), heatmaps and curves, and saving into the profile's figure folder."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

PALETTE = "colorblind"


def set_style() -> None:
    """One look for every figure: seaborn whitegrid, readable fonts, colour-blind palette."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=1.0)
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                                "figure.constrained_layout.use": True,
                                "axes.titlesize": 11, "axes.titleweight": "bold", "image.cmap": "viridis"})


def savefig(fig: plt.Figure, name: str, fig_dir: str | Path) -> None:
    """Save fig as <fig_dir>/<name>.png and show that file in the notebook, at the size the screen dpi would draw
    it (one rendering, not a second one by the inline backend)."""
    from IPython.display import Image, display
    from PIL import Image as PILImage

    path = Path(fig_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    with PILImage.open(path) as png:
        width = round(png.width * matplotlib.rcParams["figure.dpi"] / matplotlib.rcParams["savefig.dpi"])
    display(Image(filename=str(path), width=width))


def legend_outside(ax: plt.Axes) -> None:
    """Move the legend to the right of the axes so it never hides data."""
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False)


def heatmap(ax: plt.Axes, grid, title: str, label: str, vmin: float | None = 0.0, vmax: float | None = None,
            cmap: str = "viridis", period: int | None = None) -> None:
    """A shift heatmap: rows dy, columns dx (pixels), colour bar labelled; lattice lines every `period`."""
    grid = np.asarray(grid)
    im = ax.imshow(grid, origin="upper", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("horizontal shift dx (px)")
    ax.set_ylabel("vertical shift dy (px)")
    ax.grid(False)
    if period:
        ticks = np.arange(0, grid.shape[1], period)
        ax.set_xticks(ticks)
        ax.set_yticks(np.arange(0, grid.shape[0], period))
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)


def image_row(axes, images, titles, vmin: float = 0.0, vmax: float = 1.0) -> None:
    """Grayscale images side by side on one pixel scale [vmin, vmax], no ticks, a title and the size in px each."""
    for ax, image, title in zip(axes, images, titles, strict=True):
        image = np.asarray(image)
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel(f"{image.shape[1]} × {image.shape[0]} px")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)


def corruption_grid(image, kinds, corrupt, severities: int = 5) -> plt.Figure:
    """One image (C, H, W) under each corruption (columns) at severities 1..severities (rows), beside it clean in
    the first row; corrupt(x, kind, severity) is the corruption function."""
    fig, axes = plt.subplots(severities + 1, len(kinds), figsize=(1.3 * len(kinds), 1.35 * (severities + 1)),
                             squeeze=False, layout="constrained")
    x = image[None]
    for col, kind in enumerate(kinds):
        for row in range(severities + 1):
            ax = axes[row, col]
            shown = x if row == 0 else corrupt(x, kind, row)
            ax.imshow(np.asarray(shown[0, 0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if row == 0:
                ax.set_title(kind, fontsize=9)
            if col == 0:
                ax.set_ylabel("clean" if row == 0 else f"severity {row}", fontsize=9)
    return fig
