"""Hook logic, imported as modules and called with explicit answers."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.combinations import SUPPORTED
from tests.conftest import render_answers
from tests.support import (
    PROJECT_TEMPLATE,
    cookiecutter_json,
    cuda_versions,
    framework_compute,
    load_hook,
    option_choices,
)

pre = load_hook("pre_gen_project")
post = load_hook("post_gen_project")


def answers(**overrides: Any) -> dict[str, Any]:
    return render_answers(**overrides)


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_supported_answers_validate(name: str) -> None:
    assert pre.validate(answers(**SUPPORTED[name])) == []


def test_every_problem_is_reported_at_once() -> None:
    bad = answers(project_name="class", author_email="nope", compute="cuda")
    errors = pre.validate(bad)
    assert len(errors) == 3
    assert all("\n" not in e for e in errors)


def test_values_passed_around_the_prompt_are_still_checked() -> None:
    # Replayed or scripted answers can bypass cookiecutter's own choice check.
    errors = pre.validate({**answers(), "python_version": "3.9", "use_redis_cache": "no"})
    assert any("python_version '3.9' is not supported" in e for e in errors)
    assert any("use_redis_cache must be true or false" in e for e in errors)


def test_cuda_version_ignored_for_cpu() -> None:
    assert pre.validate(answers(model_framework="xgboost", cuda_version="13.0")) == []


def test_removal_table_is_per_answer() -> None:
    minimal = answers(use_redis_cache=False, use_prediction_logging=False, ci="none")
    removed = post.paths_to_remove(minimal)
    pkg = minimal["package_name"]
    assert f"src/{pkg}/serving/cache.py" in removed
    assert ".github" in removed and ".gitlab-ci.yml" in removed
    assert f"src/{pkg}/models/sklearn_model.py" not in removed
    assert all("{" not in path for path in removed)


def test_remove_paths_handles_files_folders_and_absent_paths(tmp_path: Path) -> None:
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "sub" / "x.py").write_text("")
    (tmp_path / "file.txt").write_text("")
    post.remove_paths(tmp_path, ["folder", "file.txt", "never-existed"])
    assert list(tmp_path.iterdir()) == []


def test_hooks_accept_exactly_the_choices_of_cookiecutter_json() -> None:
    offered = option_choices()
    accepted = {**pre.choices(answers()), **{key: (True, False) for key in pre.BOOLEANS}}
    assert {k: set(v) for k, v in accepted.items()} == {k: set(v) for k, v in offered.items()}
    for key, values in offered.items():
        for value in values:
            errors = pre.validate(answers(**{key: value}))
            assert not any("is not supported" in e or "must be true" in e for e in errors), errors
        assert any(key in e for e in pre.validate({**answers(), key: "no-such-value"}))


def test_version_table_is_complete() -> None:
    table = cuda_versions()
    assert set(table) == set(option_choices()["cuda_version"])
    gpu_frameworks = set(option_choices()["model_framework"]) - {"sklearn"}
    assert all(set(row["frameworks"]) <= gpu_frameworks for row in table.values())
    torch = cookiecutter_json()["_versions"]["torch_index"]
    assert set(torch) == {"cpu"} | {v for v, row in table.items() if "pytorch" in row["frameworks"]}
    # What the hooks refuse per framework is what the table says has no wheels.
    for version, row in table.items():
        for framework in gpu_frameworks:
            errors = pre.validate(
                answers(model_framework=framework, compute="cuda", cuda_version=version)
            )
            assert (errors == []) == (framework in row["frameworks"]), (version, framework, errors)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"python_version": "3.11"}, *framework_compute().values()],
    ids=["default", "py311", *framework_compute()],
)
def test_base_images_follow_compute(overrides: dict[str, Any]) -> None:
    context = answers(**overrides)
    cuda = overrides.get("compute") == "cuda"
    train_image = (
        cuda_versions()[context["cuda_version"]]["base_image"]
        if cuda
        else f"python:{context['python_version']}-slim"
    )
    settings = post.build_settings(context)
    base = "CUDA_BASE_IMAGE" if settings["COMPUTE"] == "cuda" else "CPU_BASE_IMAGE"
    assert settings[base] == train_image  # the base of the `training` service's image
    assert settings["CPU_BASE_IMAGE"].startswith("python:")
    assert settings["COMPUTE"] == overrides.get("compute", "cpu")


def test_fallback_images_in_compose_and_dockerfile_are_in_the_table() -> None:
    images = {row["base_image"] for row in cuda_versions().values()}
    for rel in ("compose.yaml", "docker/Dockerfile"):
        text = (PROJECT_TEMPLATE / rel).read_text(encoding="utf-8")
        named = set(re.findall(r"nvidia/cuda:[\w.-]+", text))
        assert named and named <= images, f"{rel} names {named - images}, not in _versions"
    gpu_doc = (PROJECT_TEMPLATE / "docs" / "gpu.md").read_text(encoding="utf-8")
    assert all(f"`{image}`" in gpu_doc for image in images), "docs/gpu.md lacks a CUDA image"


@pytest.mark.parametrize(
    "overrides",
    [c for c in framework_compute().values() if c["model_framework"] == "pytorch"],
    ids=[name for name in framework_compute() if name.startswith("pytorch")],
)
def test_torch_wheel_source_is_exclusive(overrides: dict[str, Any]) -> None:
    key = overrides.get("cuda_version", "cpu")
    index = cookiecutter_json()["_versions"]["torch_index"][key]
    block = post.torch_source(answers(**overrides))
    parsed = tomllib.loads(block)
    assert [i["url"] for i in parsed["tool"]["uv"]["index"]] == [index]
    assert (
        parsed["tool"]["uv"]["sources"]["torch"]["index"]
        == parsed["tool"]["uv"]["index"][0]["name"]
    )


def test_no_torch_source_for_other_frameworks() -> None:
    assert post.torch_source(answers(model_framework="xgboost")) == ""


def test_env_gets_fresh_random_secrets() -> None:
    example = "# comment\nPOSTGRES_PASSWORD=change-me\nADMIN_TOKEN=change-me\nPOSTGRES_USER=app\n"
    first, second = post.render_env(example), post.render_env(example)
    assert "change-me" not in first
    assert "POSTGRES_USER=app" in first and "# comment" in first
    assert first != second
    token = next(line for line in first.splitlines() if line.startswith("ADMIN_TOKEN="))
    assert len(token.split("=", 1)[1]) >= 32


def test_init_git_never_fails_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert post.init_git(tmp_path) is False
    assert not (tmp_path / ".git").exists()


def test_baked_env_example_holds_placeholders_only(bake) -> None:  # type: ignore[no-untyped-def]
    project = bake(monitoring="prometheus-grafana")
    example = project.read(".env.example")
    env = project.read(".env")
    for key in post.SECRET_KEYS:
        assert f"{key}={post.PLACEHOLDER}" in example
        assert f"{key}={post.PLACEHOLDER}" not in env
    assert (project.path / ".env").stat().st_mode & 0o077 == 0


def test_every_secret_is_also_a_file_for_its_container(bake) -> None:  # type: ignore[no-untyped-def]
    """compose.yaml mounts secrets/<key in lower case>: the same random values as .env."""
    project = bake(monitoring="prometheus-grafana")
    env = dict(line.split("=", 1) for line in project.read(".env").splitlines() if "=" in line)
    folder = project.path / "secrets"
    assert folder.stat().st_mode & 0o077 == 0
    for key in post.SECRET_KEYS:
        assert (folder / key.lower()).read_text(encoding="utf-8") == env[key]
        assert len(env[key]) >= 24
    compose = project.read("compose.yaml")
    for path in folder.iterdir():
        assert f"file: ./secrets/{path.name}\n" in compose, path.name


def test_private_files_never_exist_with_wider_modes(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    target.chmod(0o644)
    post.write_private(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o600
