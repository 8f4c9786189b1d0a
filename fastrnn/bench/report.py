"""The report: the text tables of medians and ratios, and the summary of the
numerical check.  (The figure is ``plot.py``'s; the JSON is written by the
command line from the same records.)"""

from fastrnn.bench.cases import CELL_TITLES


def _fmt(value):
    """Three significant figures (an exponent only below 0.001)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(value):
    return f"{value:.0f}x" if value >= 10 else f"{value:.2f}x"


def base_engine(records, names):
    """fastrnn when it was measured, else the first engine with a figure."""
    measured = [n for n in names if any("median_s" in r["engines"].get(n, {}) for r in records)]
    if "fastrnn" in measured:
        return "fastrnn"
    return measured[0] if measured else None


def format_tables(records, names, gemm_rates):
    """The text report: one table per cell, mode and thread count.

    Parameters
    ----------
    records : list of dict
        From the run (the ``cases`` of the JSON).
    names : list of str
        The engines that ran, in column order.
    gemm_rates : dict
        thread count -> FLOP/s.

    Returns
    -------
    str
    """
    base = base_engine(records, names)
    if base is None:
        return "nothing was timed\n"
    peers = [n for n in names if n != base]
    lines = []
    if gemm_rates:
        lines.append("GEMM peak (one large GEMM through SciPy's BLAS): "
                     + ", ".join(f"{n} thread{'s' if n > 1 else ''} {rate / 1e9:.1f} GFLOP/s"
                                 for n, rate in sorted(gemm_rates.items())))
    lines.append(f"Medians over rounds; a peer's (x) is its time / {base}'s "
                 f"(> 1: {base} is faster); 'of peak' = GEMM-only time / {base}'s; "
                 "! = wrong by the numerical check.")
    reduced = sorted({e["check"]["precision"] for r in records for e in r["engines"].values()
                      if "precision" in e.get("check", {})})
    if reduced:
        lines.append(f"err = the largest error of an engine in {'/'.join(reduced)} against "
                     "the full-precision baseline (|difference| / max|value|, over its outputs).")
    groups = {}
    for r in records:
        c = r["case"]
        groups.setdefault((c["cell"], c["mode"], c["threads"]), []).append(r)
    for (cell, mode, threads), group in groups.items():
        unit, scale = ("us", 1e6) if mode == "latency" else ("ms", 1e3)
        lines.append("")
        lines.append(f"{CELL_TITLES.get(cell, cell)}, {mode}, {threads} "
                     f"thread{'s' if threads > 1 else ''} ({unit} per call)")
        header = ["shape", "GEMM-only", base, "of peak"] + peers
        rows = [header]
        for r in group:
            cells = [r["shape"]]
            gemm = r["gemm_only_s"]
            cells.append(_fmt(gemm * scale) if gemm else "-")
            b = r["engines"].get(base, {})
            base_time = b.get("median_s")
            suspects = r.get("suspects", [])
            cells.append(_cell_text(b, scale, base in suspects))
            cells.append(f"{100 * gemm / base_time:.0f}%" if gemm and base_time else "-")
            for name in peers:
                e = r["engines"].get(name, {})
                text = _cell_text(e, scale, name in suspects)
                if "median_s" in e and base_time:
                    text += f" ({_ratio(e['median_s'] / base_time)})"
                if "precision" in e.get("check", {}):       # its error against float32
                    text += f" err {e['check']['max_error']:.1e}"
                cells.append(text)
            rows.append(cells)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            lines.append("  " + "  ".join(text.ljust(w) if i == 0 else text.rjust(w)
                                          for i, (text, w) in enumerate(zip(row, widths))))
    return "\n".join(lines) + "\n"


def _cell_text(e, scale, suspect):
    if "median_s" in e:
        return _fmt(e["median_s"] * scale) + ("!" if suspect else "")
    return {"n/a": "n/a", "error": "ERROR", "mismatch": "MISMATCH",
            "skipped": "skipped"}.get(e.get("status"), "-")


def format_unsupported(records):
    """Why each ``n/a`` of the tables is one: a line per engine and reason, in the
    order first met; None when every engine ran every case."""
    reasons = {}
    for r in records:
        for name, e in r["engines"].items():
            if e.get("status") == "n/a":
                reasons.setdefault((name, e.get("reason", "")), None)
    if not reasons:
        return None
    return "\n".join(f"n/a {name}: {reason}" for name, reason in reasons)


def format_check_summary(records):
    """One line on the numerical check: how many comparisons, how many failed,
    the largest error of a full-precision engine and where; None when nothing
    was compared."""
    checks = [(r, name, e["check"]) for r in records for name, e in r["engines"].items()
              if e.get("check", {}).get("against")]
    if not checks:
        return None
    full = [t for t in checks if "precision" not in t[2]]     # reduced: in the tables
    r, name, worst = max(full or checks, key=lambda t: t[2]["max_error"])
    bad = sum(not c["ok"] for _, _, c in checks)
    return (f"numerical check: {len(checks)} comparisons, "
            + (f"{bad} FAILED" if bad else "all within tolerance")
            + f"; largest error {worst['max_error']:.1e} of the array's max "
            f"({name} vs {worst['against']}, {r['case']['cell']} {r['case']['mode']} "
            f"{r['shape']}, {worst['worst']})")
