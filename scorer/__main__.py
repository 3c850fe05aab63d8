"""`python -m scorer`: score benchmark jobs until SIGTERM or Ctrl-C (the request in hand is finished first)."""

from __future__ import annotations

from leadersboard.service import serve
from scorer.service import run
from scorer.settings import ScorerSettings


def main() -> None:
    serve("scorer", ScorerSettings, run)


if __name__ == "__main__":
    main()
