"""`python -m frontend`: serve the page until SIGTERM or Ctrl-C."""

from __future__ import annotations

from frontend.settings import FrontendSettings
from leadersboard.service import serve


def main() -> None:
    from frontend.server import run  # uvicorn and Gradio load when serving, not when the module is imported

    serve("frontend", FrontendSettings, run)


if __name__ == "__main__":
    main()
