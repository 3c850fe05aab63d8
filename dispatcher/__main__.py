"""`python -m dispatcher`: dispatch until SIGTERM or Ctrl-C."""

from __future__ import annotations

from dispatcher.service import run
from dispatcher.settings import DispatcherSettings
from leadersboard.service import serve


def main() -> None:
    serve("dispatcher", DispatcherSettings, run)


if __name__ == "__main__":
    main()
