"""A run's results in a notebook: they show themselves, and ``results.plot()`` shows the pictures.

    results = lr_lab.run(model=net, datamodule=dm, overrides={"metric": "val_acc",
                                                              "metric_mode": "max"})
    results          # the ranked table and the answer, as HTML
    results.plot()   # loss_curves.png, lr_finder.png, lr_sweep.png, inline

Jupyter (and VS Code, Colab) render ``_repr_html_``; the pictures are the run folder's own PNGs,
embedded, so what a notebook shows is what the folder holds.
"""

from __future__ import annotations

import base64
import html
from dataclasses import fields
from pathlib import Path

from lr_lab.analysis.results import RunResults
from lr_lab.report.files import pngs_of
from lr_lab.report.table import answer, format_table, ranked_by, table_cells


class Pictures:
    """The report's PNGs, shown inline by a notebook (``paths`` are the files)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def _repr_html_(self) -> str:
        images = [
            f'<figure style="margin:0 0 1em 0"><img style="max-width:100%" alt="{p.name}" '
            f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"/>'
            f"<figcaption><code>{html.escape(str(p))}</code></figcaption></figure>"
            for p in self.paths
            if p.is_file()
        ]
        return "".join(images) or "<p>No pictures: the run has no report yet.</p>"

    def __repr__(self) -> str:
        return f"Pictures({[str(p) for p in self.paths]})"


class Results(RunResults):
    """:class:`~lr_lab.analysis.results.RunResults` that a notebook shows as the table and answer.

    ``run_dir`` is the run folder; ``plot()`` shows its pictures.
    """

    run_dir: Path | None = None

    @classmethod
    def of(cls, results: RunResults, run_dir: Path) -> Results:
        """The same records, able to show themselves."""
        shown = cls(**{f.name: getattr(results, f.name) for f in fields(RunResults)})
        shown.run_dir = Path(run_dir)
        return shown

    def plot(self) -> Pictures:
        """The report's pictures (loss curves, the finder's curve, the sweep), inline."""
        return Pictures(pngs_of(self, self.run_dir) if self.run_dir else [])

    def __str__(self) -> str:
        # print(results) in a script: what the command line prints, not the dataclass's fields.
        if self.comparison is None:
            return f"lr_lab run {self.run_dir}: {self.status}"
        return f"{format_table(self)}\n\n{answer(self)}\n\nRun folder: {self.run_dir}"

    def _repr_html_(self) -> str:
        if self.comparison is None:
            return f"<p>lr_lab run <code>{html.escape(str(self.run_dir))}</code>: {self.status}</p>"
        header, rows, notes = table_cells(self)
        cells = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        extra = "".join(f"<li>no suggestion from {html.escape(n)}</li>" for n in notes)
        return (
            f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"
            f"<p><i>{html.escape(ranked_by(self.comparison))}</i></p>"
            + (f"<ul>{extra}</ul>" if extra else "")
            + f"<p>{html.escape(answer(self))}</p>"
            f"<p>Run folder: <code>{html.escape(str(self.run_dir))}</code> "
            "(<code>results.plot()</code> shows its pictures)</p>"
        )
