"""The ``ibhooks`` command: re-draw, report and summarise a run from its JSONL log alone.

    ibhooks plot RUN.jsonl [-o DIR] [--format png pdf] [--dpi 200] [--no-animation] [--estimator NAME]
    ibhooks report RUN.jsonl [-o report.html] [--no-figures] [--estimator NAME]
    ibhooks summary RUN.jsonl [--estimator NAME]
    ibhooks compare A.jsonl B.jsonl ... [-o DIR] [--estimator NAME] [--label NAME ...]
    ibhooks export RUN.jsonl (--tensorboard DIR | --wandb) [--project P] [--offline]

This module only parses arguments, loads the run (:func:`ibhooks.runlog.load_run`) and hands it to
:mod:`ibhooks.report` (HTML report, text summary) or :mod:`ibhooks.plotting` (figures).

A missing, empty or corrupt log, or an estimator the run does not have, is a one-line error with exit
status 2; a log whose last line was cut off (a killed run) is read up to that line with a warning.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence, TextIO

from . import plotting, report
from .runlog import Run, RunLogWarning, load_run

EXIT_OK = 0
EXIT_USAGE = 2


class CliError(Exception):
    """An error reported as one line on stderr with exit status 2."""


def _load(path: str, err: TextIO) -> Run:
    p = Path(path)
    try:
        with warnings.catch_warnings():  # what was skipped is said below, as one line each
            warnings.simplefilter("ignore", RunLogWarning)
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
        print(f"ibhooks: warning: the last line of {run.path} was cut off (the run was killed while writing?); "
              f"using the {len(run.records)} complete measurement(s) before it", file=err)
    for note in run.notes:
        if not (run.truncated and "cut off" in note):
            print(f"ibhooks: warning: {note}", file=err)
    return run


def _require_records(run: Run) -> None:
    if not run.records:
        raise CliError(f"run log {run.path} has a header but no measurements yet; nothing to draw")
    if not plotting.estimator_names(run.records):
        raise CliError(
            f"run log {run.path} has {len(run.records)} measurement(s) but no layer estimates "
            "(every estimator failed?); see the errors with: ibhooks summary"
        )


def _cmd_plot(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = _load(args.run, err)
    _require_records(run)
    records = report.records_for(run.records, args.estimator)
    out_dir = Path(args.output) if args.output else run.path.parent / f"{run.path.stem}_figures"
    paths = plotting.save_all_figures(
        records,
        out_dir,
        header=run.header,
        formats=args.format,
        dpi=args.dpi,
        animation=not args.no_animation,
    )
    for name, p in paths.items():
        print(f"{name}: {p}", file=out)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = _load(args.run, err)
    target = Path(args.output) if args.output else run.path.with_suffix(".html")
    text = report.render_report(run, dpi=args.dpi, figures=not args.no_figures, estimator=args.estimator)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write the report to {target}: {exc}") from None
    print(f"report: {target}", file=out)
    return EXIT_OK


def _cmd_summary(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = _load(args.run, err)
    print(report.render_summary(run, estimator=args.estimator), file=out)
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    runs = [_load(p, err) for p in args.runs]
    for run in runs:
        _require_records(run)
    labels = list(args.label or [])
    if labels and len(labels) != len(runs):
        raise CliError(f"got {len(labels)} --label for {len(runs)} runs; give one label per run or none")
    names = labels or [str(run.header.get("run_name") or run.path.stem) for run in runs]
    pairs = [(name, report.records_for(run.records, args.estimator)) for name, run in zip(names, runs)]
    out_dir = Path(args.output) if args.output else Path("ibhooks_compare")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, draw in (("compare_planes", plotting.plot_compare_planes),
                       ("compare_curves", plotting.plot_compare_curves)):
        fig = draw(pairs, estimator=args.estimator)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=args.dpi, metadata={"Software": None})
        plotting.close_figure(fig)
        print(f"{name}: {path}", file=out)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.tensorboard and not args.wandb:
        raise CliError("say where to export: --tensorboard DIR and/or --wandb")
    run = _load(args.run, err)
    sinks = []
    if args.tensorboard:
        from .integrations.tensorboard import TensorBoardSink

        sinks.append(TensorBoardSink(args.tensorboard, figure_every=args.figure_every))
    if args.wandb:
        from .integrations.wandb import WandbSink

        sinks.append(WandbSink(project=args.project, mode="offline" if args.offline else None,
                               name=str(run.header.get("run_name") or run.path.stem),
                               figure_every=args.figure_every, run_log=str(run.path)))
    for sink in sinks:
        sink.start(dict(run.header))
        for rec in run.records:
            sink.write(rec)
        sink.close()
        where = getattr(sink, "log_dir", None) or getattr(getattr(sink, "run", None), "dir", "")
        print(f"{sink.name}: {len(run.records)} measurement(s) -> {where}", file=out)
    return EXIT_OK


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ibhooks")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def _run_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN.jsonl", help="run log written by IBMonitor")


def _estimator_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--estimator", metavar="NAME", help=f"only this estimator's {what} (default: all)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ibhooks`` command (``plot``, ``report``, ``summary``, ``compare``,
    ``export``)."""
    parser = argparse.ArgumentParser(
        prog="ibhooks",
        description="Information-plane diagnostics: re-draw, report and summarise a run from its JSONL log.",
    )
    parser.add_argument("--version", action="version", version=f"ibhooks {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "plot",
        help="draw every figure of a run from its log",
        description="Draw the information plane, layer curves, DPI panel and plane animation.",
    )
    _run_argument(p)
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
    _estimator_argument(p, "figures")
    p.set_defaults(func=_cmd_plot)

    r = sub.add_parser(
        "report",
        help="write a self-contained HTML report",
        description="Write one HTML file with figures, coverage, warnings, errors, phases and DPI checks.",
    )
    _run_argument(r)
    r.add_argument(
        "-o", "--output", metavar="report.html", help="output file (default: the log's name with .html)"
    )
    r.add_argument("--dpi", type=int, default=150, help="resolution of the embedded figures (default: 150)")
    r.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib needed)")
    _estimator_argument(r, "figures and tables")
    r.set_defaults(func=_cmd_report)

    s = sub.add_parser(
        "summary",
        help="print a table of the run in the terminal",
        description="Layers x last / peak I(X;T) and I(T;Y), phases, warnings and DPI checks.",
    )
    _run_argument(s)
    _estimator_argument(s, "table")
    s.set_defaults(func=_cmd_summary)

    c = sub.add_parser(
        "compare",
        help="draw two or more runs side by side (e.g. tanh vs ReLU)",
        description="Information planes side by side on shared axes, and layer curves overlaid "
                    "(colour = layer, line style = run).",
    )
    c.add_argument("runs", nargs="+", metavar="RUN.jsonl", help="run logs written by IBMonitor")
    c.add_argument("-o", "--output", metavar="DIR", help="output folder (default: ./ibhooks_compare)")
    c.add_argument("--label", nargs="+", metavar="NAME", help="one name per run (default: the run names)")
    c.add_argument("--dpi", type=int, default=200, help="resolution (default: 200)")
    _estimator_argument(c, "figures")
    c.set_defaults(func=_cmd_compare)

    e = sub.add_parser(
        "export",
        help="replay a run log into TensorBoard and/or W&B",
        description="Send every measurement of a JSONL run log to TensorBoard (a fresh run folder) and/or "
                    "W&B (--offline needs no network; sync later with `wandb sync`).",
    )
    _run_argument(e)
    e.add_argument("--tensorboard", metavar="DIR", help="TensorBoard log folder")
    e.add_argument("--wandb", action="store_true", help="log to a new W&B run")
    e.add_argument("--project", default="ibhooks", help="W&B project (default: ibhooks)")
    e.add_argument("--offline", action="store_true", help="W&B offline mode")
    e.add_argument("--figure-every", type=int, default=10, metavar="K",
                   help="draw the plane images at every K-th measurement and at the end (default: 10)")
    e.set_defaults(func=_cmd_export)
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
    except (CliError, report.ReportError, ImportError) as exc:
        print(f"ibhooks {args.command}: error: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
