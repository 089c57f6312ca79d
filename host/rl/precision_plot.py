"""The BFP schedule of a run as a plot: each layer's mantissa width against
training steps, one panel per network (docs/bfp.md, "Training DDPG in BFP")."""
from __future__ import annotations

import json
from pathlib import Path


def write_precision(history: dict[str, list], out: Path, title: str) -> None:
    """``history``: per network, (training step, layer, r(X), width after) of
    every check. Writes out/precision.json (the rows) and out/precision.png."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    (out / "precision.json").write_text(json.dumps(history) + "\n")
    fig, axes = plt.subplots(1, len(history), figsize=(5 * len(history), 3.2), sharey=True, squeeze=False)
    for ax, (net, rows) in zip(axes[0], history.items()):
        for layer in sorted({int(r[1]) for r in rows}):
            pts = [(int(r[0]), int(r[3])) for r in rows if int(r[1]) == layer]
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=f"layer {layer}")
        ax.set_title(net)
        ax.set_xlabel("training step")
        ax.set_yticks([2, 4, 6, 8])
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("mantissa bits")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "precision.png", dpi=90)
    plt.close(fig)
