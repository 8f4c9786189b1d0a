"""The figure of a run (``--plot``; needs matplotlib), drawn from the same
dict that ``--json`` writes."""

from fastrnn.bench.cases import CELLS, CELL_TITLES
from fastrnn.bench.report import base_engine


def plot(result, path):
    """Draw the run as one figure (needs matplotlib).

    One column per cell; rows: time per call for each engine over the shapes
    in inference (the single cell step as a lone point at the right) and in
    training, log scale, one line style per thread count (filled markers for
    one thread), the GEMM-only time in grey; then fastrnn's speedup against
    the fastest peer (figures of engines the numerical check found wrong
    left out).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    records, names = result["cases"], result["engine_order"]
    base = base_engine(records, names)
    cells = [c for c in CELLS if any(r["case"]["cell"] == c for r in records)]
    threads = sorted({r["case"]["threads"] for r in records})
    ran = {r["case"]["mode"] for r in records}
    time_modes = [m for m in ("inference", "training") if m in ran]
    if not time_modes:                          # latency only: on the first row
        time_modes = ["inference"]
    shapes = list(dict.fromkeys(r["shape"] for r in records if r["case"]["mode"] != "latency"))
    steps = list(dict.fromkeys(r["shape"] for r in records if r["case"]["mode"] == "latency"))
    position = {label: x for x, label in enumerate(shapes + steps)}
    styles = ["-", "--", ":", "-."]
    colours = {name: f"C{i}" for i, name in enumerate(names)}
    mode_colours = {"inference": "C0", "training": "C1", "latency": "C2"}

    def select(cell, mode, n_threads):
        return [r for r in records if r["case"]["cell"] == cell and r["case"]["mode"] == mode
                and r["case"]["threads"] == n_threads]

    def median(r, name, checked=False):
        if checked and name in r.get("suspects", []):
            return None
        return r["engines"].get(name, {}).get("median_s")

    def draw(ax, rows, values, k, lone=False, *, colour, marker="o", label=None):
        points = [(position[r["shape"]], v) for r, v in zip(rows, values) if v]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "" if lone else styles[k % len(styles)], marker=marker,
                    color=colour, markerfacecolor=colour if k == 0 else "none", label=label)

    n_rows = len(time_modes) + 1
    fig, axes = plt.subplots(n_rows, len(cells), figsize=(5 * len(cells), 3.7 * n_rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_yscale("log")        # before the formatters: setting a scale resets them
    for j, cell in enumerate(cells):
        for i, mode in enumerate(time_modes):
            ax = axes[i, j]
            for k, n_threads in enumerate(threads):
                for rows, lone in ((select(cell, mode, n_threads), False),
                                   (select(cell, "latency", n_threads) if i == 0 else [], True)):
                    for name in names:
                        times = [(median(r, name) or 0) * 1e3 for r in rows]
                        draw(ax, rows, times, k, lone, colour=colours[name],
                             label=None if lone else f"{name}, {n_threads}t")
                    gemm = [(r["gemm_only_s"] or 0) * 1e3 for r in rows]
                    draw(ax, rows, gemm, k, lone, colour="0.6", marker=".",
                         label=None if lone else f"GEMM-only, {n_threads}t")
            ax.set_title(f"{CELL_TITLES[cell]}: {mode}"
                         + (" (and one cell step)" if i == 0 and steps else ""))
            ax.set_ylabel("ms per call")
            ticks = list(position) if i == 0 else shapes
            ax.set_xticks(range(len(ticks)), ticks, rotation=30)
        ax = axes[-1, j]
        for k, n_threads in enumerate(threads):
            for mode, marker in (("inference", "o"), ("training", "s"), ("latency", "^")):
                rows = select(cell, mode, n_threads)
                speedups = []
                for r in rows:
                    own = median(r, base, checked=True)
                    # fastrnn.torch runs fastrnn's own kernels: not a peer
                    peers = [median(r, n, checked=True) for n in names
                             if n != base and not n.startswith("fastrnn")]
                    peers = [t for t in peers if t]
                    speedups.append(min(peers) / own if own and peers else None)
                draw(ax, rows, speedups, k, mode == "latency", colour=mode_colours[mode],
                     marker=marker, label=f"{mode}, {n_threads}t")
        ax.axhline(1.0, color="k", linewidth=0.8)
        ax.set_title(f"{CELL_TITLES[cell]}: {base}'s speedup vs the fastest peer")
        ax.set_ylabel(f"fastest peer's time / {base}'s")
        ax.set_xticks(range(len(position)), list(position), rotation=30)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(      # label 2x and 5x only
            lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize="x-small")
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:                # one legend per row: every engine drawn in any panel
        labelled = {}
        for ax in row:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                labelled.setdefault(label, handle)
        if labelled:
            row[-1].legend(list(labelled.values()), list(labelled), fontsize="x-small",
                           loc="center left", bbox_to_anchor=(1.0, 0.5))
    machine = result["machine"]
    precision = result["config"].get("precision", "float32")
    weights = f", --precision {precision}" if precision != "float32" else ""
    fig.suptitle(f"fastrnn bench, {result['config']['dtype']}{weights}: {machine['cpu']}, "
                 f"{machine['cores']} cores, {result['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
