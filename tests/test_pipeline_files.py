"""The pipeline files a bake produces for each answer that shapes them: the DVC remote and its
extra, the framework module and its parameters, the dependency lines and the device."""

from __future__ import annotations

import configparser
import tomllib
from typing import Any

import pytest
import yaml

REMOTES = {
    "local": ("../../{slug}-dvc-remote", '"dvc>=3.50,<4"'),
    "s3": ("s3://<bucket>/{slug}", '"dvc[s3]>=3.50,<4"'),
    "gcs": ("gs://<bucket>/{slug}", '"dvc[gs]>=3.50,<4"'),
    "azure": ("azure://<container>/{slug}", '"dvc[azure]>=3.50,<4"'),
    "ssh": ("ssh://<user>@<host>/<path>/{slug}", '"dvc[ssh]>=3.50,<4"'),
}
FRAMEWORKS = {
    "sklearn": ("sklearn_model.py", "max_iter"),
    "xgboost": ("xgboost_model.py", "n_estimators"),
    "pytorch": ("torch_model.py", "epochs"),
}


def _train_group(project: Any) -> list[str]:
    return list(tomllib.loads(project.read("pyproject.toml"))["dependency-groups"]["train"])


@pytest.mark.parametrize("remote", list(REMOTES))
def test_dvc_remote_url_and_extra(bake: Any, remote: str) -> None:
    project = bake(dvc_remote=remote)
    config = configparser.ConfigParser()
    config.read_string(project.read(".dvc/config"))
    assert config["core"]["remote"] == "storage"
    url, extra = REMOTES[remote]
    slug = project.path.name
    assert config["'remote \"storage\"'"]["url"] == url.format(slug=slug)
    assert extra in project.read("pyproject.toml")
    assert project.has_file(".dvcignore") and project.has_file(".dvc/.gitignore")


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_one_model_module_and_its_parameters(bake: Any, framework: str) -> None:
    compute = "cpu" if framework == "sklearn" else "cuda"
    project = bake(model_framework=framework, compute=compute)
    models = f"src/{project.package}/models"
    module, key = FRAMEWORKS[framework]
    present = {m for m, _ in FRAMEWORKS.values() if project.has_file(f"{models}/{m}")}
    assert present == {module}
    params = yaml.safe_load(project.read("params.yaml"))
    assert key in params["train"]
    assert params["train"]["device"] == compute
    stages = yaml.safe_load(project.read("dvc.yaml"))["stages"]
    assert list(stages) == ["prepare", "train", "evaluate", "promote"]
    # The first stage reads the DVC-tracked raw file (params.yaml data.raw), not a stage output.
    assert "${data.raw}" in stages["prepare"]["deps"]
    assert params["data"]["raw"].startswith("data/raw/")
    assert project.read("data/raw/.gitignore").splitlines() == [
        "/" + params["data"]["raw"].rsplit("/", 1)[1]
    ]
    for stage in stages.values():
        for dep in stage.get("deps", []):
            if dep.startswith("src/"):
                assert project.has_file(dep), dep
    group = " ".join(_train_group(project))
    if framework == "xgboost":
        # compute=cuda needs the full xgboost wheel (CUDA + NCCL), cpu takes xgboost-cpu
        assert "xgboost>=" in group and "xgboost-cpu" not in group and "onnxmltools" in group
    if framework == "pytorch":
        assert "torch>=" in group
    assert "protobuf<7" in group


def test_xgboost_on_cpu_avoids_the_nccl_wheel(bake: Any) -> None:
    group = _train_group(bake(model_framework="xgboost", compute="cpu"))
    assert any(d.startswith("xgboost-cpu") and "linux" in d for d in group)
    assert any(d.startswith("xgboost>=") and "darwin" in d for d in group)
