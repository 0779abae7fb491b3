"""The ``ibhooks`` command: re-draw, report and summarise a run from its JSONL log alone.

    ibhooks plot RUN.jsonl [-o DIR] [--format png pdf] [--dpi 200] [--no-animation]
    ibhooks report RUN.jsonl [-o report.html]
    ibhooks summary RUN.jsonl [--estimator NAME]

A missing, empty or corrupt log is a one-line error with exit status 2; a log whose last line was
cut off (a killed run) is read up to that line with a warning.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from . import plotting
from .estimate import Record

EXIT_OK = 0
EXIT_USAGE = 2


class CliError(Exception):
    """An error reported as one line on stderr with exit status 2."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _load(path: str, err: TextIO) -> Any:
    from .runlog import load_run

    p = Path(path)
    try:
        run = load_run(p)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    except UnicodeDecodeError:
        raise CliError(
            f"run log {p} is not a text file (not UTF-8); pass the .jsonl an IBMonitor wrote"
        ) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except (OSError, AttributeError, KeyError, TypeError) as exc:
        raise CliError(f"could not read run log {p}: {exc}") from None
    if run.truncated:
        print(
            f"ibhooks: warning: the last line of {run.path} was cut off (the run was killed while writing?); "
            f"using the {len(run.records)} complete measurement(s) before it",
            file=err,
        )
    return run


def _require_records(run: Any) -> None:
    if not run.records:
        raise CliError(f"run log {run.path} has a header but no measurements yet; nothing to draw")
    if not plotting.estimator_names(run.records):
        raise CliError(
            f"run log {run.path} has {len(run.records)} measurement(s) but no layer estimates "
            "(every estimator failed?); see the errors with: ibhooks summary"
        )


# --------------------------------------------------------------------------------------------------
# Summary data
# --------------------------------------------------------------------------------------------------


def _fmt(x: Optional[float], digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def _phase_text(spans: Sequence[plotting.PhaseSpan]) -> str:
    parts = []
    for s in spans:
        name = {"fitting": "fit", "compression": "comp"}.get(s.phase, s.phase)
        mark = "" if s.status == "detected" else "?"
        end = "→" if s.ongoing else f"–{s.end:g}"
        parts.append(f"{name}{mark} {s.start:g}{end}")
    return ", ".join(parts) if parts else "-"


def summary_rows(records: Sequence[Record], estimator: str) -> List[Dict[str, Any]]:
    """Per layer: last and peak (with its step) of I(X;T) and I(T;Y), whether the last I(X;T) is at
    its cap, and the phases (as text)."""
    rows = []
    for layer in plotting.layer_names(records):
        row: Dict[str, Any] = {"layer": layer}
        for q in plotting.QUANTITIES:
            s = plotting.layer_series(records, layer, estimator, q)
            if len(s):
                k = int(s.value.argmax())
                row[q] = {
                    "last": float(s.value[-1]),
                    "peak": float(s.value[k]),
                    "peak_step": int(s.steps[k]),
                    "saturated": bool(s.saturated[-1]),
                }
            else:
                row[q] = None
        row["phases"] = _phase_text(plotting.phase_spans(records, layer, estimator))
        rows.append(row)
    return rows


def _run_facts(run: Any) -> List[Tuple[str, str]]:
    recs = run.records
    hdr = run.header
    facts = [("log", str(run.path))]
    if hdr.get("run_name"):
        facts.append(("run", str(hdr["run_name"])))
    if hdr.get("created"):
        facts.append(("created", str(hdr["created"])))
    if recs:
        facts.append(("measurements", f"{len(recs)} (steps {recs[0].step} to {recs[-1].step})"))
        modes = sorted({r.mode for r in recs})
        facts.append(("mode", ", ".join(modes)))
        facts.append(("probe samples n", str(recs[-1].n_samples)))
        if recs[-1].h_y is not None:
            facts.append(("H(Y)", plotting.fmt_bits(recs[-1].h_y)))
        facts.append(("measurement time", f"{sum(r.seconds for r in recs):.1f} s in total"))
    else:
        facts.append(("measurements", "none yet"))
    if run.truncated:
        facts.append(("note", "the last line of the log was cut off (killed run); it was skipped"))
    return facts


def render_summary(run: Any, estimator: Optional[str] = None) -> str:
    """The terminal summary: run facts, then per estimator a table of layers x (last / peak I(X;T),
    last / peak I(T;Y), phases), then warnings, DPI checks and errors in brief."""
    out: List[str] = []
    facts = _run_facts(run)
    width = max(len(k) for k, _ in facts)
    out += [f"{k:<{width}}  {v}" for k, v in facts]
    recs = run.records
    ests = plotting.estimator_names(recs)
    if estimator is not None:
        if estimator not in ests:
            raise CliError(f"estimator {estimator!r} is not in this run; it has: {', '.join(ests) or 'none'}")
        ests = [estimator]
    for est in ests:
        xcap, _ = plotting.caps(recs, est)
        out.append("")
        out.append(f"estimator {est}")
        out.append(
            f"  I(X;T) measured as {plotting.quantity_label(recs, est, 'I_XT') or '-'}"
            + (f", cap {xcap:.4g} bits" if xcap is not None else "")
        )
        out.append(f"  I(T;Y) measured as {plotting.quantity_label(recs, est, 'I_TY') or '-'}")
        rows = summary_rows(recs, est)
        table = [["layer", "I(X;T) last", "peak @step", "I(T;Y) last", "peak @step", "phases"]]
        for r in rows:
            cells = [r["layer"]]
            for q in plotting.QUANTITIES:
                v = r[q]
                if v is None:
                    cells += ["-", "-"]
                else:
                    cells += [
                        _fmt(v["last"]) + ("*" if v["saturated"] else ""),
                        f"{_fmt(v['peak'])} @{v['peak_step']}",
                    ]
            cells.append(r["phases"])
            table.append(cells)
        widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
        for j, row in enumerate(table):
            line = "  " + "  ".join(
                str(c).ljust(widths[i]) if i in (0, len(row) - 1) else str(c).rjust(widths[i])
                for i, c in enumerate(row)
            )
            out.append(line.rstrip())
            if j == 0:
                out.append("  " + "  ".join("-" * w for w in widths))
        if any(r["I_XT"] and r["I_XT"]["saturated"] for r in rows):
            out.append("  * at the estimator's cap: the true value may be higher")
        out.append(
            "  phases: fit = fitting (I(T;Y) rises), comp = compression (I(X;T) falls); "
            "? = candidate, → = ongoing"
        )
    totals = plotting.dpi_totals(recs)
    if totals:
        out.append("")
        out.append("DPI along chains")
        for (est, q), t in totals.items():
            out.append(
                f"  {est} {plotting.GENERIC_LABELS.get(q, q)}: violated at {t['measurements_violated']} of "
                f"{t['measurements']} measurements ({t['violated']} of {t['pairs_checked']} pairs, "
                f"{t['significant']} significant)"
            )
    warns = plotting.warnings_summary(recs)
    if warns:
        out.append("")
        out.append(f"warnings ({len(warns)} distinct)")
        for w in warns[:20]:
            where = w.get("layer") or "-"
            out.append(
                f"  [{w.get('code', '?')}] {where}: seen {w['count']}x, "
                f"steps {w['first_step']}..{w['last_step']}"
            )
        if len(warns) > 20:
            out.append(f"  ... and {len(warns) - 20} more (see: ibhooks report)")
    n_err = sum(len(r.errors or []) for r in recs)
    if n_err:
        out.append("")
        out.append(
            f"estimator errors: {n_err} (first: {recs[[bool(r.errors) for r in recs].index(True)].errors[0]})"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
     max-width:1100px;margin:2em auto;padding:0 1.5em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;
     padding-bottom:.2em} h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
th,td{border:1px solid #d8d8d8;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f4f6} tr:nth-child(even) td{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{font-weight:600;background:#f3f4f6}
figure{margin:1.2em 0;text-align:center} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;margin-top:.3em;text-align:left}
.monitored{color:#05668d;font-weight:600} .skipped{color:#777} .error{color:#b00020;font-weight:600}
.sev-error{color:#b00020;font-weight:600} .sev-warning{color:#b35c00;font-weight:600} .sev-info{color:#555}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em;margin:1em 0}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}
nav a{margin-right:1em}
"""


def _e(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return html.escape(f"{x:.4g}")
    if isinstance(x, (list, tuple)):
        return html.escape("×".join(str(v) for v in x))
    return html.escape(str(x))


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, num_cols: Sequence[int] = (), cls: str = ""
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            raw = isinstance(c, _Raw)
            text = c.html if raw else _e(c)
            klass = ' class="num"' if i in num_cols else ""
            cells.append(f"<td{klass}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw:
    def __init__(self, html_text: str) -> None:
        self.html = html_text


_CAPTIONS = {
    "information_plane": (
        "Information plane: x = I(X;T), y = I(T;Y) (the quantities actually measured are on the axes), "
        "one trajectory per layer, colour = training step (log scale). Dashed: the estimator's cap on "
        "I(X;T) (log₂ n); dotted: H(Y). Ringed points are at the cap."
    ),
    "layer_curves": "I(X;T) and I(T;Y) per layer over training (log step axis), bands = intervals where the "
    "estimator gives them. Bottom: fitting (upper lane) and compression (lower lane) phases "
    "decided by trend tests; hatched = candidate, arrow = ongoing.",
    "dpi": "Data-processing inequality along each chain at a few steps: along a Markov chain both "
    "quantities can only fall. Red crosses mark violations reported by the checks.",
}


def render_report(run: Any, *, dpi: int = 110, figures: bool = True) -> str:
    """A self-contained HTML report of ``run`` (figures embedded as base64 PNG)."""
    recs = run.records
    hdr = run.header
    title = hdr.get("run_name") or Path(run.path).stem
    parts: List[str] = []
    parts.append(f"<h1>ibhooks report: {_e(title)}</h1>")
    parts.append(
        '<nav><a href="#summary">Summary</a><a href="#figures">Figures</a><a href="#phases">Phases</a>'
        '<a href="#dpi">DPI</a><a href="#warnings">Warnings</a><a href="#coverage">Coverage</a>'
        '<a href="#settings">Settings</a></nav>'
    )
    parts.append(
        _table(["", ""], _run_facts(run), cls="facts").replace(
            "<thead><tr><th></th><th></th></tr></thead>", ""
        )
    )
    if run.truncated:
        parts.append(
            '<p class="note">The last line of this log was cut off (the run was killed while writing); '
            "it was skipped.</p>"
        )
    ests = plotting.estimator_names(recs)

    parts.append('<h2 id="summary">Summary</h2>')
    if not recs:
        parts.append('<p class="note">No measurements yet: the log holds only its header.</p>')
    for est in ests:
        xcap, hy = plotting.caps(recs, est)
        parts.append(f"<h3>Estimator <code>{_e(est)}</code></h3>")
        parts.append(
            f"<p>I(X;T) measured as <code>{_e(plotting.quantity_label(recs, est, 'I_XT'))}</code>"
            + (f", cap {xcap:.4g} bits" if xcap is not None else "")
            + f"; I(T;Y) measured as <code>{_e(plotting.quantity_label(recs, est, 'I_TY'))}</code>"
            + (f", H(Y) = {plotting.fmt_bits(hy)}" if hy is not None else "")
            + ".</p>"
        )
        rows = []
        for r in summary_rows(recs, est):
            cells: List[Any] = [r["layer"]]
            for q in plotting.QUANTITIES:
                v = r[q]
                if v is None:
                    cells += ["–", "–", "–"]
                else:
                    cells += [
                        _fmt(v["last"]) + (" *" if v["saturated"] else ""),
                        _fmt(v["peak"]),
                        v["peak_step"],
                    ]
            cells.append(r["phases"])
            rows.append(cells)
        parts.append(
            _table(
                [
                    "layer",
                    "I(X;T) last",
                    "I(X;T) peak",
                    "at step",
                    "I(T;Y) last",
                    "I(T;Y) peak",
                    "at step",
                    "phases",
                ],
                rows,
                num_cols=(1, 2, 3, 4, 5, 6),
            )
        )
        parts.append(
            "<p><small>* at the estimator's cap: the true value may be higher. Phases: fit = fitting, "
            "comp = compression, ? = candidate, → = ongoing.</small></p>"
        )

    parts.append('<h2 id="figures">Figures</h2>')
    if figures and recs and ests:
        for name, fig in plotting.make_figures(recs, header=hdr).items():
            png = plotting.figure_to_png(fig, dpi=dpi)
            plotting.close_figure(fig)
            b64 = base64.b64encode(png).decode("ascii")
            cap = next((v for k, v in _CAPTIONS.items() if name.startswith(k)), "")
            parts.append(
                f'<figure id="fig-{_e(name)}"><img alt="{_e(name)}" src="data:image/png;base64,{b64}">'
                f"<figcaption><b>{_e(name.replace('_', ' '))}.</b> {_e(cap)}</figcaption></figure>"
            )
    else:
        parts.append("<p>No figures (no measurements).</p>")

    parts.append('<h2 id="phases">Phases</h2>')
    phase_rows = []
    if recs:
        last = recs[-1]
        for layer in plotting.layer_names(recs):
            for est in ests:
                for e in plotting.phase_entries(last, layer, est):
                    if not isinstance(e, dict):
                        continue
                    ci = e.get("slope_ci_per_decade")
                    slope = e.get("slope_bits_per_decade")
                    slope_txt = (
                        ""
                        if slope is None
                        else f"{slope:+.3g}"
                        + (
                            f" [{ci[0]:+.3g}, {ci[1]:+.3g}]"
                            if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci
                            else ""
                        )
                    )
                    end = e.get("end_step")
                    phase_rows.append(
                        [
                            layer,
                            est,
                            e.get("phase"),
                            e.get("status"),
                            e.get("start_step"),
                            ("ongoing" if e.get("ongoing") else end),
                            slope_txt,
                            e.get("p_adjusted"),
                            e.get("reason"),
                        ]
                    )
    if phase_rows:
        parts.append(
            f"<p>Decisions at the last measurement (step {recs[-1].step}) over the whole history.</p>"
        )
        parts.append(
            _table(
                [
                    "layer",
                    "estimator",
                    "phase",
                    "status",
                    "start step",
                    "end step",
                    "slope bits/decade [CI]",
                    "p (adjusted)",
                    "reason",
                ],
                phase_rows,
                num_cols=(4, 5, 7),
            )
        )
    else:
        parts.append("<p>No phase decisions in this log.</p>")

    parts.append('<h2 id="dpi">Data-processing inequality</h2>')
    chains = plotting.chains_of(hdr, recs)
    if chains:
        parts.append(
            "<ul>"
            + "".join(f"<li><b>{_e(n)}</b>: {' → '.join(_e(x) for x in ls)}</li>" for n, ls in chains)
            + "</ul>"
        )
    totals = plotting.dpi_totals(recs)
    if totals:
        parts.append(
            _table(
                [
                    "estimator",
                    "quantity",
                    "measurements checked",
                    "with a violation",
                    "pairs checked",
                    "pairs violated",
                    "significant",
                ],
                [
                    [
                        est,
                        plotting.GENERIC_LABELS.get(q, q),
                        t["measurements"],
                        t["measurements_violated"],
                        t["pairs_checked"],
                        t["violated"],
                        t["significant"],
                    ]
                    for (est, q), t in totals.items()
                ],
                num_cols=(2, 3, 4, 5, 6),
            )
        )
    agg: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for rec in recs:
        for v in plotting.dpi_violations(rec):
            key = (
                v.get("chain"),
                v.get("estimator"),
                v.get("quantity"),
                v.get("upstream"),
                v.get("downstream"),
            )
            a = agg.setdefault(
                key, {"count": 0, "significant": 0, "max": 0.0, "first": rec.step, "last": rec.step}
            )
            a["count"] += 1
            a["significant"] += int(bool(v.get("significant")))
            a["max"] = max(a["max"], float(v.get("size_bits") or 0.0))
            a["last"] = rec.step
    if agg:
        parts.append(
            _table(
                [
                    "chain",
                    "estimator",
                    "quantity",
                    "upstream → downstream",
                    "times",
                    "significant",
                    "largest excess (bits)",
                    "steps",
                ],
                [
                    [
                        k[0],
                        k[1],
                        plotting.GENERIC_LABELS.get(k[2], k[2]),
                        f"{k[3]} → {k[4]}",
                        a["count"],
                        a["significant"],
                        a["max"],
                        f"{a['first']}..{a['last']}",
                    ]
                    for k, a in agg.items()
                ],
                num_cols=(4, 5, 6),
            )
        )
    elif not totals:
        parts.append("<p>No DPI checks in this log (no chains detected or declared).</p>")
    bounds = [(rec.step, v) for rec in recs for v in plotting.bound_violations(rec)]
    if bounds:
        parts.append("<h3>Within-layer bound violations</h3>")
        parts.append(
            _table(
                ["step", "layer", "estimator", "bound", "excess (bits)", "kind"],
                [
                    [s, v.get("layer"), v.get("estimator"), v.get("bound"), v.get("size_bits"), v.get("kind")]
                    for s, v in bounds[:200]
                ],
                num_cols=(0, 4),
            )
        )

    parts.append('<h2 id="warnings">Warnings</h2>')
    warns = plotting.warnings_summary(recs)
    if warns:
        rows = []
        for w in warns:
            sev = str(w.get("severity") or "")
            rows.append(
                [
                    _Raw(f'<span class="sev-{_e(sev)}">{_e(sev)}</span>'),
                    w.get("code"),
                    w.get("layer"),
                    w.get("estimator"),
                    w["count"],
                    f"{w['first_step']}..{w['last_step']}",
                    w.get("message"),
                    w.get("remedy"),
                ]
            )
        parts.append(
            _table(
                ["severity", "code", "layer", "estimator", "times", "steps", "message (latest)", "remedy"],
                rows,
                num_cols=(4,),
            )
        )
    else:
        parts.append("<p>No warnings.</p>")
    errors = [(rec.step, e) for rec in recs for e in rec.errors or [] if isinstance(e, dict)]
    if errors:
        parts.append("<h3>Estimator errors</h3>")
        parts.append(
            _table(
                ["step", "layer", "estimator", "error"],
                [[s, e.get("layer"), e.get("estimator"), e.get("error")] for s, e in errors[:200]],
                num_cols=(0,),
            )
        )

    parts.append('<h2 id="coverage">Coverage</h2>')
    cov = [c for c in hdr.get("coverage") or [] if isinstance(c, dict)]
    if cov:
        n_mon = sum(1 for c in cov if c.get("status") == "monitored")
        parts.append(f"<p>{n_mon} of {len(cov)} modules monitored.</p>")
        rows = []
        for c in cov:
            st = str(c.get("status") or "")
            rows.append(
                [
                    c.get("name"),
                    c.get("type"),
                    _Raw(f'<span class="{_e(st)}">{_e(st)}</span>'),
                    c.get("shape"),
                    c.get("reduction"),
                    c.get("dim"),
                    c.get("activation"),
                    c.get("chain") if st == "monitored" else c.get("reason"),
                ]
            )
        parts.append(
            _table(
                ["module", "type", "status", "output", "reduction", "dim", "activation", "chain / reason"],
                rows,
                num_cols=(5,),
            )
        )
    else:
        parts.append("<p>The log has no coverage table.</p>")

    parts.append('<h2 id="settings">Estimator settings</h2>')
    cfg = hdr.get("config")
    parts.append(
        "<pre>" + _e(json.dumps(cfg, indent=2, default=str)) + "</pre>"
        if cfg
        else "<p>No settings recorded.</p>"
    )
    if hdr.get("versions"):
        parts.append(_table(["package", "version"], list(hdr["versions"].items())))
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ibhooks report: {_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
        f"<footer><p><small>Written by <code>ibhooks report</code> on {_e(stamp)} "
        f"from {_e(run.path)}.</small>"
        f"</p></footer>\n</body></html>\n"
    )


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------


def _cmd_plot(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = _load(args.run, err)
    _require_records(run)
    out_dir = Path(args.output) if args.output else run.path.parent / f"{run.path.stem}_figures"
    paths = plotting.save_all_figures(
        run, out_dir, formats=args.format, dpi=args.dpi, animation=not args.no_animation
    )
    for name, p in paths.items():
        print(f"{name}: {p}", file=out)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = _load(args.run, err)
    target = Path(args.output) if args.output else run.path.with_suffix(".html")
    text = render_report(run, dpi=args.dpi, figures=not args.no_figures)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write the report to {target}: {exc}") from None
    print(f"report: {target}", file=out)
    return EXIT_OK


def _cmd_summary(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = _load(args.run, err)
    print(render_summary(run, args.estimator), file=out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibhooks",
        description="Information-plane diagnostics: re-draw, report and summarise a run from its JSONL log.",
    )
    try:
        from importlib.metadata import version

        ver = version("ibhooks")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        ver = "unknown"
    parser.add_argument("--version", action="version", version=f"ibhooks {ver}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "plot",
        help="draw every figure of a run from its log",
        description="Draw the information plane, layer curves, DPI panel and plane animation.",
    )
    p.add_argument("run", metavar="RUN.jsonl", help="run log written by IBMonitor")
    p.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default: RUN_figures next to the log)"
    )
    p.add_argument(
        "--format",
        nargs="+",
        default=["png"],
        choices=["png", "pdf", "svg"],
        help="file formats (default: png)",
    )
    p.add_argument("--dpi", type=int, default=200, help="resolution of raster figures (default: 200)")
    p.add_argument("--no-animation", action="store_true", help="skip the GIF of the plane over training")
    p.set_defaults(func=_cmd_plot)

    r = sub.add_parser(
        "report",
        help="write a self-contained HTML report",
        description="Write one HTML file with figures, coverage, warnings, phases and DPI checks.",
    )
    r.add_argument("run", metavar="RUN.jsonl", help="run log written by IBMonitor")
    r.add_argument(
        "-o", "--output", metavar="report.html", help="output file (default: the log's name with .html)"
    )
    r.add_argument("--dpi", type=int, default=110, help="resolution of the embedded figures (default: 110)")
    r.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib needed)")
    r.set_defaults(func=_cmd_report)

    s = sub.add_parser(
        "summary",
        help="print a table of the run in the terminal",
        description="Layers x last / peak I(X;T) and I(T;Y), phases, warnings and DPI checks.",
    )
    s.add_argument("run", metavar="RUN.jsonl", help="run log written by IBMonitor")
    s.add_argument("--estimator", help="only this estimator (default: all)")
    s.set_defaults(func=_cmd_summary)
    return parser


def main(
    argv: Optional[Sequence[str]] = None, *, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None
) -> int:
    """Entry point of the ``ibhooks`` console script. Returns the exit status (0 ok, 2 error)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args, out, err))
    except CliError as exc:
        print(f"ibhooks {args.command}: error: {exc}", file=err)
        return EXIT_USAGE
    except ImportError as exc:
        print(f"ibhooks {args.command}: error: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
