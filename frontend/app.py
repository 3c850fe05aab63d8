"""The page: for now, where things are and how to submit; the full uploader is the next step."""

from __future__ import annotations

from typing import Any

from frontend.settings import FrontendSettings

__all__ = ["build_page"]


def build_page(settings: FrontendSettings) -> Any:
    import gradio as gr

    api = settings.ingest_public_url.rstrip("/")
    with gr.Blocks(title="LeadersBoard") as page:
        gr.Markdown(
            f"""# LeadersBoard
Submit anomaly-detection models and compare them fairly.

* API: [{api}/api/v1]({api}/api/v1/openapi.json) (OpenAPI document)
* Results: [MLflow]({settings.mlflow_public_url})

Submit from a terminal: `leadersboard submit examples/padim --wait`
(token in `LEADERSBOARD_TOKEN`, API in `LEADERSBOARD_URL={api}`).
"""
        )
    return page
