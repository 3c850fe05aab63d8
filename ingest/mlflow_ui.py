"""MLflow's UI page as the proxy serves it: experiments open on their training runs, without an assistant panel.

MLflow 3.17's UI does not choose where an experiment opens from the experiment tag `mlflow.experimentKind`
(which the runner sets all the same, leadersboard/experiments.py): its sidebar switch "GenAI / Model training"
decides, kept in the browser's localStorage under `mlflow.workflowType_v1` and "GenAI" until the user picks
(a `?workflowType=` in the address overrides it). So a new user lands on a GenAI overview, and its "MLflow
Assistant" panel opens by itself on the first visit (unless `mlflow.assistant.fab.autoOpenedOnFirstLoad_v1`
says it already did). The proxy puts one line into the page that gives a browser these defaults where it has no
value of its own; a choice the user made is kept, and the switch and the assistant button work as before.
"""

from __future__ import annotations

import json

__all__ = ["UI_DEFAULTS", "UI_PAGES", "with_ui_defaults"]

UI_PAGES = frozenset({"/", "/index.html"})
"""Where MLflow serves its page (everything else is its bundle, under /static-files/, or its APIs)."""
UI_DEFAULTS: dict[str, object] = {
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
}
"""localStorage keys of MLflow's UI (`<key>_v<version>`, JSON values) and the platform's defaults for them."""
_DEFAULTS = json.dumps({key: json.dumps(value) for key, value in UI_DEFAULTS.items()})
_SCRIPT = (
    f"<script>try{{for(const[k,v]of Object.entries({_DEFAULTS}))"
    "if(localStorage.getItem(k)===null)localStorage.setItem(k,v)}catch(e){}</script>"
).encode()
_HEAD = b"<head>"


def with_ui_defaults(page: bytes) -> bytes:
    """MLflow's page with the line first in its <head>, before MLflow's (deferred) bundle reads the keys. A page
    without <head> (another MLflow) is served unchanged: the UI then opens as MLflow chooses, nothing breaks."""
    at = page.find(_HEAD)
    if at < 0:
        return page
    end = at + len(_HEAD)
    return page[:end] + _SCRIPT + page[end:]
