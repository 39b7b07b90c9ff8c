"""Experiments with the reference DQN (need the ``torch``, ``gym`` and ``plot`` extras; ``progress`` for bars).

* ``execute`` / ``load_run``: one run on disk (CSV, TensorBoard when installed, ``result.json`` written last);
* ``compare``: every arm x seed in separate processes, resumable, then ``curves.png`` and ``summary.md``;
* ``write_report``: the plot and summary of every finished run of a compare directory;
* ``progress``: what runs report while they train, shown as live bars on a terminal or plain lines elsewhere;
* ``stats``: bootstrap confidence intervals, area under the curve, final return, smoothing.

The ``laber`` command (``laber.cli``) is the usual way in: ``laber run``, ``laber compare``, ``laber report``.
"""

from laber.experiments.compare import compare
from laber.experiments.report import write_report
from laber.experiments.runs import execute, is_finished, load_run, run_dir

__all__ = ["compare", "execute", "is_finished", "load_run", "run_dir", "write_report"]
