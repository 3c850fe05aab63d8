"""The user guide's own sample (main.py and config.yaml verbatim) through the whole real stack, on the CPU.

Its `from anomalib.trainers import get_trainer` does not exist in anomalib 2.7: the runner's compat shim
(gpu_runner/compat) provides it, falling back from `accelerator: gpu` to the CPU with a warning in the log.
The dataset is the synthetic VisA-layout pcb1.zip of examples/padim (64x64 images, resized to the default
256x256 by anomalib's pre-processor since the guide's Folder sets no image size).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from examples.padim.make_dataset import make_dataset_zip
from leadersboard.client import Client
from leadersboard.models.records import JobStatus
from tests.reference import USER_GUIDE
from tests.stack_fixtures import mlflow_admin_url
from tools.stack.up import Stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

SAMPLE = Path(__file__).parent / "fixtures" / "guide_sample"
BACKBONE = "    backbone: resnet18\n"
CPU_WARNING = "[leadersboard] warning: accelerator: gpu was requested but no CUDA GPU is available; running on the CPU"


def guide_submission(root: Path, *, pre_trained: bool | None) -> Path:
    """The guide's files as a user would submit them, plus pcb1.zip; `pre_trained` added to the model if given."""
    root.mkdir(parents=True)
    (root / "main.py").write_bytes((SAMPLE / "main.py.txt").read_bytes())
    config = (SAMPLE / "config.yaml").read_text()
    assert config.count(BACKBONE) == 1
    if pre_trained is not None:
        config = config.replace(BACKBONE, f"{BACKBONE}    pre_trained: {str(pre_trained).lower()}\n")
    (root / "config.yaml").write_text(config)
    make_dataset_zip(root / "pcb1.zip")
    return root


@pytest.mark.skipif(not USER_GUIDE.is_file(), reason="the user guide is not on this machine")
def test_the_fixture_is_the_guides_code_verbatim() -> None:
    guide = USER_GUIDE.read_text()
    main = guide.split("### `main.py` の例", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    config = guide.split("### `config.yaml`", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert (SAMPLE / "main.py.txt").read_text() == main
    assert (SAMPLE / "config.yaml").read_text() == config
    assert "from anomalib.trainers import get_trainer" in main


def test_the_guides_sample_completes_with_auroc_and_f1_in_mlflow(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    submission = guide_submission(tmp_path / "guide", pre_trained=False)
    sid = demo.submit([submission], metadata={"method": "padim", "description": "the guide's sample"})
    record = demo.wait(sid, timeout_s=600)

    assert record.status is JobStatus.COMPLETED, record.error
    assert 0.9 <= record.metrics["image_AUROC"] <= 1.0
    assert 0.0 <= record.metrics["image_F1Score"] <= 1.0
    assert record.params == {
        "method": "padim", "backbone": "resnet18", "dataset": "pcb1", "image_size": "default", "max_epochs": "10",
    }  # fmt: skip
    assert record.dataset == "pcb1"
    log, _, _ = demo.logs(sid)
    assert CPU_WARNING in log
    assert "[leadersboard] pcb1 from pcb1.zip (read-only)" in log
    assert "Training completed successfully!" in log
    run = MlflowClient(mlflow_admin_url(stack[1])).get_run(record.mlflow_run_id or "")
    assert run.data.metrics["image_AUROC"] == record.metrics["image_AUROC"]
    assert run.data.metrics["image_F1Score"] == record.metrics["image_F1Score"]
    assert run.data.tags["method"] == "padim"


def test_pretrained_weights_offline_fail_with_how_to_fix_it(demo: Client, tmp_path: Path) -> None:
    """The guide's config as written (pre_trained defaults to true): the weights cannot be downloaded."""
    record = demo.wait(demo.submit([guide_submission(tmp_path / "pretrained", pre_trained=None)]), timeout_s=600)
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error.startswith(
        "pretrained weights are not available offline (jobs have no network): set pre_trained: false in the "
        "model's init_args, or ask an admin to provision the weights into the weights cache; exit code 1"
    )
    assert "LocalEntryNotFoundError" in record.error
