"""The page on :8501: a Gradio Blocks whose one HTML component carries the app's own JavaScript.

The browser does all the work against the API and the store (CORS): it asks ingest for presigned URLs and
PUTs the files straight to the store with progress bars, polls the job list, follows logs and shows the
leaderboard. This server only serves the page, its static files (`frontend/static/`) and its settings:
it takes no file (see `frontend.guard`).
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from typing import Any

from frontend.guard import TrafficStats, UploadGuard
from frontend.settings import FrontendSettings

__all__ = [
    "SCRIPTS",
    "STATIC_DIR",
    "STATIC_ROUTE",
    "STYLESHEET",
    "WORKER_SCRIPTS",
    "browser_config",
    "build_page",
    "create_app",
]

STATIC_DIR = Path(__file__).parent / "static"
STATIC_ROUTE = "/lb-static"
"""Not `/static`: Gradio serves its own fonts and scripts there."""
SCRIPTS = (
    "lb-core.js",
    "lb-i18n.js",
    "lb-hash.js",
    "lb-upload.js",
    "lb-submit.js",
    "lb-jobs.js",
    "lb-plot.js",
    "lb-board.js",
    "lb-main.js",
)
STYLESHEET = "lb.css"
WORKER_SCRIPTS = {"hash_worker_url": "lb-hash-worker.js", "hash_library_url": "vendor/hash-wasm-sha256.js"}
"""Loaded by the page's Web Workers (lb-hash.js), not by the page: the page gets their versioned URLs."""

_ROOT_TEMPLATE = """<div id="lb-app" class="lb-app" aria-busy="true">
  <div class="lb-loading"><span class="lb-spinner"></span> Loading LeadersBoard…</div>
</div>"""

_ON_LOAD = """
(function start(tries) {
  if (window.LB && window.LB.start && window.LB.ready()) { window.LB.start(element, props); return; }
  if (tries > 400) { element.textContent = 'The page scripts did not load: reload the page.'; return; }
  setTimeout(function () { start(tries + 1); }, 25);
})(0);
"""


def browser_config(settings: FrontendSettings) -> dict[str, Any]:
    """What the page's JavaScript receives: public URLs and knobs, never a secret."""
    return {
        "ingest_url": settings.ingest_public_url.rstrip("/"),
        "mlflow_url": settings.mlflow_public_url.rstrip("/"),
        "store_console_url": (settings.store_console_url or "").rstrip("/"),
        "jobs_refresh_ms": int(settings.jobs_refresh_s * 1000),
        "log_poll_ms": int(settings.log_poll_s * 1000),
        "jobs_page_size": settings.jobs_page_size,
        "default_metric": settings.default_metric,
        "upload_concurrency": settings.upload_concurrency,
        "upload_memory_bytes": settings.upload_memory_bytes,
        **{key: _versioned(name) for key, name in WORKER_SCRIPTS.items()},
        "language": settings.language,
    }


def _versioned(name: str) -> str:
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_ROUTE.lstrip('/')}/{name}?v={digest}"


def _head() -> str:
    tags = [f'<link rel="stylesheet" href="{html.escape(_versioned(STYLESHEET))}">']
    tags += [f'<script src="{html.escape(_versioned(name))}"></script>' for name in SCRIPTS]
    return "\n".join(tags)


def build_page(settings: FrontendSettings) -> Any:
    """The Gradio Blocks of the page (built here, never at import)."""
    import gradio as gr

    with gr.Blocks(title="LeadersBoard", fill_width=True) as page:
        gr.HTML(
            html_template=_ROOT_TEMPLATE,
            js_on_load=_ON_LOAD,
            head=_head(),
            elem_id="lb-root",
            apply_default_css=False,
            **browser_config(settings),
        )
    return page


def create_app(settings: FrontendSettings, stats: TrafficStats | None = None) -> Any:
    """The ASGI app: static files, `GET /frontend/health`, and the Gradio page at `/`, behind `UploadGuard`."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    stats = stats or TrafficStats()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(UploadGuard, stats=stats)
    app.mount(STATIC_ROUTE, StaticFiles(directory=STATIC_DIR), name="lb-static")

    @app.get("/frontend/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "traffic": stats.as_dict()}

    return gr.mount_gradio_app(app, build_page(settings), path="/", footer_links=[], show_error=True)
