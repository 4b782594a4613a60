"""The model page: ``/models/current`` and ``/models/<version>`` render the model's evaluation report.

The report is the artifact folder's ``REPORT/report.md`` with its PNG plots, shown as one HTML page a
clinician can read from the card's link. The page carries no patient data (aggregate evaluation of a
model trained on simulated patients), so it is served without a JWT: browsers opening a card link
have none. Raw HTML inside the Markdown is not rendered.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response
from markdown_it import MarkdownIt

from plugin.errors import NotFound
from plugin.runtime import runtime

bp = Blueprint("models", __name__)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}\.png$")
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
_IMG_SRC = re.compile(r'<img src="([^"]+)"')
SUMMARY_HEADING = "## In brief, for clinicians"  # written by training.evaluation.clinician
REPORT_CANDIDATES = ("REPORT/report.md", "report/report.md", "REPORT.md", "report.md")
LIMITS = [
    "Trained on a simulated cohort of children with BECT, calibrated to published figures; it has not been "
    "validated on real patients.",
    "Rare doses (0.125–0.375 g/day and 1.5 g/day or more) are seldom chosen: the published model shares this weakness.",
    "Every recommendation is restricted to the label and renal-adjusted dose bounds before it is shown.",
    "Decision support for clinician review: it does not replace clinical judgement or the product label.",
]
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
line-height:1.5;color:#1b1b1b}table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #bbb;padding:.3rem .6rem;
text-align:left}th{background:#f0f0f0}img{max-width:100%;height:auto;border:1px solid #ddd;margin:.5rem 0}
.limits{background:#fff8e1;border-left:4px solid #f0a500;padding:.5rem 1rem}code{background:#f4f4f4;padding:0 .2rem}
.meta{color:#555}"""


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _folder_for(version: str) -> tuple[Path, str]:
    rt = runtime()
    registry = rt.models.registry
    if version == "current":
        name = rt.models.registry_version or registry.current_version()
        path = rt.models.path or registry.current_path()
        if name is None or path is None:
            raise NotFound("no model is in service yet")
        return Path(path), str(name)
    if not _SAFE_VERSION.match(version):
        raise NotFound("no such model version")
    path_of = getattr(registry, "path_of", None)
    try:
        path = Path(path_of(version)) if path_of is not None else None
    except Exception:
        path = None
    if path is None or not path.is_dir():
        raise NotFound("no such model version")
    return path, version


def _report_file(folder: Path) -> Path | None:
    for candidate in REPORT_CANDIDATES:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _plots(folder: Path, report: Path | None) -> list[Path]:
    places = [report.parent] if report is not None else []
    places += [folder / "REPORT", folder]
    seen: dict[str, Path] = {}
    for place in places:
        if place.is_dir():
            for png in sorted(place.glob("*.png")):
                seen.setdefault(png.name, png)
    return list(seen.values())


def _metadata(folder: Path) -> dict[str, Any]:
    try:
        value = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _split_after_summary(markdown: str) -> tuple[str, str]:
    """The report up to the end of its clinicians' summary, and the rest: the known limits go between.

    A report without that summary (older models) gets the limits before it, as the page's opening.
    """
    start = markdown.find(f"\n{SUMMARY_HEADING}\n")
    if start < 0:
        return "", markdown
    end = markdown.find("\n## ", start + len(SUMMARY_HEADING) + 2)
    return (markdown, "") if end < 0 else (markdown[:end + 1], markdown[end + 1:])


@bp.get("/models/<version>")
def model_page(version: str) -> Response:
    """The evaluation report of a model version (``current`` = the one in service) as HTML."""
    folder, name = _folder_for(version)
    report = _report_file(folder)
    plots = _plots(folder, report)
    base = f"/models/{html.escape(name)}/files/"
    meta = _metadata(folder)
    title = f"epidose model {name}"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head><body>",
             f"<h1>Levetiracetam dose model: {html.escape(name)}</h1>"]
    facts = [f"{html.escape(str(k))}: {html.escape(str(meta[k]))}" for k in ("training_data", "config_name", "kind", "created", "version")
             if k in meta]
    if facts:
        parts.append("<p class='meta'>" + " · ".join(facts) + "</p>")
    limits = ("<div class='limits'><h2>Known limits</h2><ul>" +
              "".join(f"<li>{html.escape(text)}</li>" for text in LIMITS) + "</ul></div>")
    referenced: set[str] = set()
    if report is not None:
        opening, rest = _split_after_summary(report.read_text(encoding="utf-8"))
        rendered = _markdown().render(opening) + limits + _markdown().render(rest)

        def relink(match: re.Match[str]) -> str:
            source = html.unescape(match.group(1))
            file_name = Path(source).name
            if source.startswith(("http://", "https://", "/")) or not _SAFE_NAME.match(file_name):
                return '<img src=""'
            referenced.add(file_name)
            return f'<img src="{base}{html.escape(file_name)}"'

        parts.append(_IMG_SRC.sub(relink, rendered))
    else:
        parts.append(limits)
        parts.append("<p>This model folder has no evaluation report (REPORT/report.md).</p>")
    others = [p for p in plots if p.name not in referenced]
    if others:
        parts.append("<h2>Plots</h2>")
        for plot in others:
            caption = html.escape(plot.stem.replace("_", " ").replace("-", " "))
            parts.append(f"<figure><img src='{base}{html.escape(plot.name)}' alt='{caption}'>"
                         f"<figcaption>{caption}</figcaption></figure>")
    parts.append("</body></html>")
    response = Response("".join(parts), mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
    return response


@bp.get("/models/<version>/files/<name>")
def model_file(version: str, name: str) -> Response:
    """A PNG plot of a model's report."""
    if not _SAFE_NAME.match(name):
        raise NotFound("no such file")
    folder, _ = _folder_for(version)
    for plot in _plots(folder, _report_file(folder)):
        if plot.name == name:
            response = Response(plot.read_bytes(), mimetype="image/png")
            response.headers["Cache-Control"] = "public, max-age=300"
            return response
    raise NotFound("no such file")
