"""Output paths, and what the plots show."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from nbutils.plots import plot_costs, show_images, show_snapshots  # noqa: E402
from nbutils.settings import output_path  # noqa: E402


def test_output_path_is_created_under_override(monkeypatch, tmp_path):
    monkeypatch.setenv("NBUTILS_OUTPUT_DIR", str(tmp_path / "out"))
    path = output_path("x.png")
    assert path == tmp_path / "out" / "x.png" and path.parent.is_dir()


def test_show_images_grid_layout_and_titles():
    images = [np.full((4, 4, 3), v) for v in (0.0, 0.5, 1.0)] + [np.zeros((1, 4, 4, 3))]
    fig = show_images(images, ["a", "b", "c", "d"], ncols=3)
    axes = fig.axes
    assert len(axes) == 6  # 2 rows x 3 columns; the last two stay empty
    assert [ax.get_title() for ax in axes[:4]] == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(axes[1].images[0].get_array(), images[1])


def test_show_snapshots_picks_evenly_spaced_steps():
    snaps = {s: np.zeros((2, 2, 3)) for s in range(0, 101, 10)}  # 11 snapshots
    fig = show_snapshots(snaps, max_images=3)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["step 0", "step 50", "step 100"]


def test_plot_costs_plots_history_on_log_scale():
    history = {"step": [0, 1, 2], "total": [100.0, 10.0, 1.0], "content": [1.0, 2.0, 3.0],
               "style": [5.0, 0.5, 0.05]}
    fig = plot_costs(history)
    assert len(fig.axes) == 3
    np.testing.assert_array_equal(fig.axes[2].lines[0].get_ydata(), [100.0, 10.0, 1.0])
    assert all(ax.get_yscale() == "log" for ax in fig.axes)


def test_plot_training_curves_and_embedding_scatter():
    from nbutils.plots import plot_embedding_2d, plot_training_curves

    hist = {"step": [1, 2], "loss": [0.3, 0.1], "active_fraction": [0.9, 0.2]}
    fig = plot_training_curves({"hard": hist, "random": hist})
    assert [line.get_label() for line in fig.axes[1].lines] == ["hard", "random"]
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_ydata(), [0.9, 0.2])
    pts = np.array([[0, 0], [1, 1], [5, 5], [6, 6.0]])
    fig = plot_embedding_2d(pts, [0, 0, 3, 3], {0: "a", 3: "b"})
    texts = {t.get_text(): t.xy for t in fig.axes[0].texts}
    assert texts == {"a": (0.5, 0.5), "b": (5.5, 5.5)}  # names at class centres


def test_plot_cost_vs_time_draws_each_run_against_time_and_passes():
    from nbutils.plots import plot_cost_vs_time

    runs = {"adam": {"time": [0.5, 1.0], "step": [0, 1], "total": [10.0, 5.0]},
            "lbfgs": {"time": [0.6, 1.1, 1.6], "step": [0, 1, 2], "total": [10.0, 2.0, 1.0]}}
    fig = plot_cost_vs_time(runs)
    time_ax, pass_ax = fig.axes
    np.testing.assert_array_equal(time_ax.lines[1].get_xdata(), [0.6, 1.1, 1.6])
    np.testing.assert_array_equal(pass_ax.lines[0].get_xdata(), [0, 1])
    assert time_ax.get_yscale() == "log"
