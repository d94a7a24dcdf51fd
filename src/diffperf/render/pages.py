"""HTML pages from the jinja2 templates in ``templates/`` (autoescaped), and atomic writes of pages and charts."""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path

import jinja2

from diffperf.files import atomic_path
from diffperf.history.trend import Trends
from diffperf.render import charts, history_text
from diffperf.render.table import seconds, signed_change

__all__ = ["TEMPLATES", "data_uri", "render_page", "write_output"]

TEMPLATES = Path(__file__).parent / "templates"


def data_uri(content: bytes, media_type: str = "image/png") -> str:
    """``content`` inline, as a ``data:`` URI: the page needs no other file."""
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates, autoescaped, with the number filters the pages use."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        data_uri=data_uri,
        seconds=seconds,
        signed=signed_change,
        ratio=history_text.ratio,
        percent=history_text.percent,
        value=lambda value, metric: history_text.value_text(metric, value),
        level=lambda level, metric: history_text.level_text(metric, level),
        interval_name=history_text.interval_name,
        css=lambda status: str(status).replace(" ", "-"),
    )
    return env


def render_page(template: str, **context) -> str:
    """Render one of the templates with ``context``."""
    return environment().get_template(template).render(**context)


def write_output(path: str | os.PathLike, content: bytes | str) -> None:
    """Write a chart (bytes) or a page (text) atomically (:func:`diffperf.files.atomic_path`)."""
    with atomic_path(path) as temp:
        if isinstance(content, bytes):
            temp.write_bytes(content)
        else:
            temp.write_text(content, encoding="utf-8")


def trend_html(trends: Trends, png: bytes | None = None) -> str:
    """A self-contained page: the chart (embedded), change points and every value in tables."""
    return render_page("trend.html", trends=trends, warnings=history_text.trend_warnings(trends),
                             chart_png=png if png is not None else charts.trend_chart(trends))


def write_trend(trends: Trends, out: str | os.PathLike) -> None:
    """Write ``out`` atomically: a PNG chart for ``*.png``, a self-contained page for ``*.html``."""
    out = Path(out)
    write_output(out, charts.trend_chart(trends) if out.suffix.lower() == ".png" else trend_html(trends))
