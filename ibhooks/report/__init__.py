"""The run report: the self-contained HTML page (``ibhooks report``) and the text summary
(``ibhooks summary``), both drawn from a run read back from its log (:func:`ibhooks.runlog.load_run`).

``html.py`` fills ``template.html`` (with ``style.css``); ``summary.py`` writes plain text; both read
the typed rows of ``tables.py``; ``select.py`` narrows a run to one estimator. Importing this package
does not import matplotlib (only drawing the report's figures does).
"""

from .html import render_report
from .select import ReportError, check_estimator, records_for, run_phases
from .summary import render_summary

__all__ = ["render_report", "render_summary", "ReportError", "check_estimator", "records_for", "run_phases"]
