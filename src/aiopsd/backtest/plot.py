"""One PNG per backtested series: values, band, scores, detections and labelled windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiopsd.backtest.runner import SeriesResult


def plot_series(result: SeriesResult, path: Path) -> None:
    """Two stacked panels sharing the time axis: the series with its band, then the score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, scores = result.series, result.scores
    t = series.timestamps.astype("datetime64[s]")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        for start, end in result.windows or []:
            for ax in (top, bottom):
                ax.axvspan(
                    np.datetime64(int(start), "s"), np.datetime64(int(end), "s"), color="tab:orange", alpha=0.2, lw=0
                )
        if np.isfinite(scores.yhat_lower).any():
            top.fill_between(t, scores.yhat_lower, scores.yhat_upper, color="tab:blue", alpha=0.15, lw=0, label="band")
        top.plot(t, series.values, color="black", lw=0.6, label="value")
        hits = scores.anomaly_score >= 1.0
        top.scatter(t[hits], series.values[hits], color="tab:red", s=18, zorder=3, label="detection")
        top.set_title(series.relative.as_posix())
        top.legend(loc="upper left", fontsize="small")
        bottom.plot(t, np.clip(scores.anomaly_score, 0, 3), color="tab:purple", lw=0.6)
        bottom.axhline(1.0, color="tab:red", lw=0.8, ls="--")
        bottom.set_ylabel("score (clipped at 3)")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
