"""The self-contained HTML report of a run (``ibhooks report``).

The page is ``template.html`` with ``style.css`` inlined (both ship in this package); the renderer
fills the template's ``${...}`` slots with one HTML fragment per section. Every value from the run
(layer names, messages, settings) is HTML-escaped; figures are embedded as base64 PNG, so the file
needs nothing from the network.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .. import plotting
from ..schema import QUANTITIES, PhaseDecision, Record
from .select import check_estimator, records_for, run_phases
from .tables import Phases, errors_of, estimator_summary, fmt, robust_table, run_facts

#: Order of the phases in the phase table.
PHASE_ORDER = {"fitting": 0, "compression": 1}

#: Most rows of a per-measurement table (bound violations, errors) before it is cut.
MAX_ROWS = 200

CAPTIONS = {
    "information_plane": (
        "Information plane: x = I(X;T), y = I(T;Y) (the quantities actually measured are on the axes), "
        "one trajectory per layer, colour = training step (log scale). Dashed: the estimator's cap on "
        "I(X;T) (log₂ n); dotted: H(Y). Ringed points are at the cap."
    ),
    "layer_curves": (
        "I(X;T) and I(T;Y) per layer over training (log step axis), bands = intervals where the estimator "
        "gives them. Bottom: fitting (upper lane) and compression (lower lane) phases decided by trend "
        "tests; hatched = candidate, arrow = ongoing."
    ),
    "dpi": (
        "Data-processing inequality along each chain at a few steps: along a Markov chain both quantities "
        "can only fall. Red crosses mark violations reported by the checks."
    ),
}


class Raw(str):
    """A fragment that is already HTML (not escaped again by :func:`cell`)."""


def esc(x: Any) -> str:
    """``x`` as escaped HTML text: floats to 4 significant digits, sequences joined with ×, None empty."""
    if x is None:
        return ""
    if isinstance(x, Raw):
        return x
    if isinstance(x, float):
        return html.escape(f"{x:.4g}")
    if isinstance(x, (list, tuple)):
        return html.escape("×".join(str(v) for v in x))
    return html.escape(str(x))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, num_cols: Sequence[int] = (),
          cls: str = "") -> str:
    """An HTML table; cells are escaped unless :class:`Raw`; ``num_cols`` are right-aligned numbers."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    num = ' class="num"'
    body = "".join(
        "<tr>"
        + "".join(f"<td{num if i in num_cols else ''}>{esc(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    klass = f' class="{esc(cls)}"' if cls else ""
    return f"<table{klass}>{thead}<tbody>{body}</tbody></table>"


def para(text: str, cls: str = "") -> str:
    """A paragraph of escaped text."""
    return f'<p class="{esc(cls)}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def significance(flag: Optional[bool]) -> str:
    """The wording for a violation's significance (``None``: its uncertainty is unknown)."""
    return "not assessed" if flag is None else ("significant" if flag else "within uncertainty")


@lru_cache(maxsize=None)
def resource(name: str) -> str:
    """A file shipped in this package (``template.html``, ``style.css``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


# -- sections ----------------------------------------------------------------------------------------


def _summary(records: Sequence[Record], names: Sequence[str], phases: Optional[Phases]) -> str:
    if not records:
        return para("No measurements yet: the log holds only its header.", "note")
    parts: List[str] = []
    for name in names:
        s = estimator_summary(records, name, phases)
        parts.append(f"<h3>Estimator <code>{esc(name)}</code></h3>")
        cap = f", cap {s.xt_cap:.4g} bits" if s.xt_cap is not None else ""
        hy = f", H(Y) = {plotting.fmt_bits(s.h_y)}" if s.h_y is not None else ""
        parts.append(
            f"<p>I(X;T) measured as <code>{esc(s.xt_quantity)}</code>{esc(cap)}; "
            f"I(T;Y) measured as <code>{esc(s.ty_quantity)}</code>{esc(hy)}.</p>"
        )
        rows = []
        for r in s.rows:
            cells: List[Any] = [r.layer]
            for q in QUANTITIES:
                p = r.get(q)
                if p is None:
                    cells += ["–"] * 3
                else:
                    cells += [fmt(p.last) + (" *" if p.saturated else ""), fmt(p.peak), p.peak_step]
            rows.append(cells + [r.phases])
        head = ["layer", "I(X;T) last", "I(X;T) peak", "at step", "I(T;Y) last", "I(T;Y) peak", "at step",
                "phases"]
        parts.append(table(head, rows, num_cols=(1, 2, 3, 4, 5, 6)))
    parts.append(
        "<p><small>* at the estimator's cap: the true value may be higher. Phases: fit = fitting, "
        "comp = compression, ? = candidate, → = ongoing.</small></p>"
    )
    return "\n".join(parts)


def _figures(records: Sequence[Record], header: Mapping[str, Any], dpi: int) -> str:
    parts = []
    for name, fig in plotting.make_figures(records, header=dict(header)).items():
        png = plotting.figure_to_png(fig, dpi=dpi)
        plotting.close_figure(fig)
        b64 = base64.b64encode(png).decode("ascii")
        caption = next((v for k, v in CAPTIONS.items() if name.startswith(k)), "")
        parts.append(
            f'<figure id="fig-{esc(name)}"><img alt="{esc(name)}" src="data:image/png;base64,{b64}">'
            f"<figcaption><b>{esc(name.replace('_', ' '))}.</b> {esc(caption)}</figcaption></figure>"
        )
    return "\n".join(parts)


def _interactive(records: Sequence[Record], header: Mapping[str, Any]) -> str:
    from .interactive import interactive_plane

    return interactive_plane(records, header=dict(header))


def _animations(records: Sequence[Record], header: Mapping[str, Any], dpi: int) -> str:
    """The plane over training as an embedded GIF, one per estimator with a plane."""
    import tempfile

    if len(records) < 2:
        return ""
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for est in plotting.estimator_names(records):
            if not plotting.has_plane(records, est):
                continue
            path = plotting.animate_plane(records, Path(tmp) / "plane.gif", estimator=est, header=dict(header),
                                          dpi=dpi, max_frames=40)
            b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            title = plotting.estimator_title(records, est)
            parts.append(f'<figure id="anim-{esc(est)}"><img alt="information plane over training ({esc(title)})" '
                         f'src="data:image/gif;base64,{b64}"><figcaption><b>Information plane over training '
                         f"({esc(title)}).</b> One frame per measurement (at most 40); the latest point of each "
                         "layer is outlined.</figcaption></figure>")
    return "\n".join(parts)


def _slope(d: PhaseDecision) -> str:
    if d.slope_bits_per_decade is None:
        return ""
    ci = d.slope_ci_per_decade
    return f"{d.slope_bits_per_decade:+.3g}" + (f" [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci is not None else "")


def _phases(records: Sequence[Record], phases: Optional[Phases]) -> str:
    decisions: List[PhaseDecision] = plotting.phase_decisions(records, phases=phases) if records else []
    names = set(plotting.estimator_names(records))
    decisions = [d for d in decisions if d.estimator in names]  # --estimator: run.phases holds them all
    if not decisions:
        return para("No phase decisions in this log.")
    order = {layer: i for i, layer in enumerate(plotting.layer_names(records))}
    ests = {name: i for i, name in enumerate(plotting.estimator_names(records))}
    ds = sorted(decisions, key=lambda d: (order.get(d.layer, len(order)), ests[d.estimator],
                                          PHASE_ORDER.get(d.phase, len(PHASE_ORDER))))
    rows = [
        [d.layer, d.estimator, d.phase, str(d.status).replace("_", " "), d.step, d.start_step,
         "ongoing" if d.ongoing else d.end_step, _slope(d), d.p_adjusted, d.reason]
        for d in ds
    ]
    head = ["layer", "estimator", "phase", "status", "decided at step", "start step", "end step",
            "slope bits/decade [CI]", "p (adjusted)", "reason"]
    last = f" (last measurement: step {records[-1].step})" if records else ""
    return para(f"Latest decision of each series, tested over the whole history{last}.") + table(
        head, rows, num_cols=(4, 5, 6, 8))


def _robust(records: Sequence[Record]) -> str:
    """The "robustness of verdicts" table, when the run has the ``robust`` analysis (else nothing)."""
    t = robust_table(records)
    if t is None:
        return ""
    rows = [[r.layer, r.phase, Raw(f'<span class="robust-{esc(r.verdict)}">{esc(r.verdict)}</span>'),
             *r.statuses, ", ".join(r.disagree)] for r in t.rows]
    intro = para(
        f"The phase tests re-run under each instrument setting (analysis 'robust', as of step {t.step}). "
        "robust: every setting detects the phase; contested: some do, some do not (it says more about the "
        "instrument than the network); absent: every setting tested it and none detects it; undecided: "
        "too few points under some setting. A candidate does not count as detected."
    )
    return ("<h3>Robustness of verdicts</h3>" + intro
            + table(["layer", "phase", "verdict", *t.settings, "settings that disagree"], rows))


def _dpi(records: Sequence[Record], header: Mapping[str, Any]) -> str:
    parts = []
    chains = plotting.chains_of(dict(header), records)
    if chains:
        items = "".join(
            f"<li><b>{esc(c.name)}</b>: {' → '.join(esc(x) for x in c.layers)}</li>" for c in chains
        )
        parts.append(f"<ul>{items}</ul>")
    totals = plotting.dpi_totals(records)
    if totals:
        head = ["estimator", "quantity", "measurements checked", "with a violation", "pairs checked",
                "pairs violated", "significant", "not assessed"]
        rows = [[t.estimator, t.quantity.label, t.measurements, t.measurements_violated, t.pairs_checked,
                 t.violated, t.significant, t.not_assessed] for t in totals.values()]
        parts.append(table(head, rows, num_cols=(2, 3, 4, 5, 6, 7)))
    pairs = plotting.dpi_violation_summary(records)
    if pairs:
        head = ["chain", "estimator", "quantity", "upstream → downstream", "times", "significant",
                "not assessed", "largest excess (bits)", "steps", "kind"]
        rows = [[p.chain, p.estimator, p.quantity.label, f"{p.upstream} → {p.downstream}", p.count,
                 p.significant, p.not_assessed, p.max_size_bits, f"{p.first_step}..{p.last_step}",
                 "bug (exact values)" if p.bugs else "estimator inconsistency"]
                for p in pairs]
        parts.append(table(head, rows, num_cols=(4, 5, 6, 7)))
    elif not totals:
        parts.append(para("No DPI checks in this log (no chains detected or declared)."))
    bounds = [(rec.step, v) for rec in records for v in plotting.bound_violations(rec)]
    if bounds:
        parts.append("<h3>Within-layer bound violations</h3>")
        rows = [[s, v.layer, v.estimator, v.bound, v.size_bits, significance(v.significant),
                 "bug" if v.is_bug else "estimator inconsistency"] for s, v in bounds[:MAX_ROWS]]
        head = ["step", "layer", "estimator", "bound", "excess (bits)", "significance", "kind"]
        parts.append(table(head, rows, num_cols=(0, 4)))
        if len(bounds) > MAX_ROWS:
            parts.append(para(f"... and {len(bounds) - MAX_ROWS} more."))
    return "\n".join(parts)


def _warnings(records: Sequence[Record]) -> str:
    warns = plotting.warnings_summary(records)
    if not warns:
        return para("No warnings.")
    rows = [[Raw(f'<span class="sev-{esc(w.severity)}">{esc(w.severity)}</span>'), w.code, w.layer,
             w.estimator, w.count, f"{w.first_step}..{w.last_step}", w.message, w.remedy] for w in warns]
    head = ["severity", "code", "layer", "estimator", "times", "steps", "message (latest)", "remedy"]
    return table(head, rows, num_cols=(4,))


def _errors(records: Sequence[Record]) -> str:
    errors = errors_of(records)
    if not errors:
        return para("No errors.")
    rows = [[s, e.stage, e.layer, e.estimator, e.error] for s, e in errors[:MAX_ROWS]]
    more = para(f"... and {len(errors) - MAX_ROWS} more.") if len(errors) > MAX_ROWS else ""
    return table(["step", "stage", "layer", "estimator", "error"], rows, num_cols=(0,)) + more


def _coverage(header: Mapping[str, Any]) -> str:
    cov = [c for c in header.get("coverage") or [] if isinstance(c, Mapping)]
    if not cov:
        return para("The log has no coverage table.")
    n_mon = sum(1 for c in cov if c.get("status") == "monitored")
    rows = []
    for c in cov:
        st = str(c.get("status") or "")
        status = Raw(f'<span class="{esc(st)}">{esc(st)}</span>')
        rows.append([c.get("name"), c.get("type"), status, c.get("shape"), c.get("reduction"), c.get("dim"),
                     c.get("activation"), c.get("chain") if st == "monitored" else c.get("reason")])
    head = ["module", "type", "status", "output", "reduction", "dim", "activation", "chain / reason"]
    return para(f"{n_mon} of {len(cov)} modules monitored.") + table(head, rows, num_cols=(5,))


def _settings(header: Mapping[str, Any]) -> str:
    cfg = header.get("config")
    if not cfg:
        out = para("No settings recorded.")
    else:
        out = f"<pre>{esc(json.dumps(cfg, indent=2, default=str))}</pre>"
    versions = header.get("versions")
    if isinstance(versions, Mapping) and versions:
        out += table(["package", "version"], list(versions.items()))
    return out


def render_report(run: Any, *, dpi: int = 150, figures: bool = True, estimator: Optional[str] = None,
                  animation: bool = True) -> str:
    """A self-contained HTML report of ``run`` (a :class:`ibhooks.runlog.Run`).

    Args:
        run: The run read back from its log.
        dpi: Resolution of the embedded figures.
        figures: Draw the figures (needs matplotlib); ``False`` gives tables only.
        estimator: Only this estimator's figures and tables (default: every one in the run).
        animation: Embed the plane over training (a GIF per estimator; needs matplotlib and pillow).

    Raises:
        ReportError: ``estimator`` is not in the run.
    """
    names = check_estimator(run.records, estimator)
    records = sorted(records_for(run.records, estimator), key=lambda r: r.step)
    header: Dict[str, Any] = dict(run.header)
    title = header.get("run_name") or Path(run.path).stem
    phases = run_phases(run)
    facts = run_facts(run, records, estimator)
    facts_html = table(["", ""], facts, cls="facts")
    if run.truncated:
        facts_html += para("The last line of this log was cut off (the run was killed while writing); "
                           "it was skipped.", "note")
    figs = _figures(records, header, dpi) if figures and records and names else ""
    if figs and animation:
        figs += _animations(records, header, min(dpi, 110))
    interactive = _interactive(records, header) if records and names else ""
    return Template(resource("template.html")).substitute(
        title=esc(title),
        style=resource("style.css"),
        facts=facts_html,
        summary=_summary(records, names, phases),
        interactive=interactive or para("No measurements yet."),
        figures=figs or para("No figures (no measurements)." if figures else "No figures (--no-figures)."),
        phases=_phases(records, phases) + _robust(records),
        dpi=_dpi(records, header),
        warnings=_warnings(records),
        errors=_errors(records),
        coverage=_coverage(header),
        settings=_settings(header),
        stamp=esc(_dt.datetime.now().isoformat(timespec="seconds")),
        source=esc(run.path),
    )
