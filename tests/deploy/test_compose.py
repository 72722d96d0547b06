"""docker-compose.yml: valid for Docker Compose, and wired as lago/SELF_HOSTED.md says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "lago" / ".env.example"
REQUIRED = (
    "GATEWAY_POSTGRES_PASSWORD",
    "LAGO_POSTGRES_PASSWORD",
    "LAGO_SECRET_KEY_BASE",
    "LAGO_RSA_PRIVATE_KEY",
    "LAGO_ENCRYPTION_PRIMARY_KEY",
    "LAGO_ENCRYPTION_DETERMINISTIC_KEY",
    "LAGO_ENCRYPTION_KEY_DERIVATION_SALT",
)
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _docker_compose() -> list[str]:
    if shutil.which("docker") is None:
        pytest.skip("the Docker CLI is not installed")
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the Docker CLI has no Compose v2 plugin (`docker compose version` failed)")
    return ["docker", "compose", "--project-directory", str(ROOT), "-f", str(COMPOSE)]


def test_docker_compose_accepts_the_file_with_the_required_settings(tmp_path: Path) -> None:
    command = _docker_compose()
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}=test-{name.lower()}\n" for name in REQUIRED))
    result = subprocess.run(
        [*command, "--env-file", str(env_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_required_secrets(tmp_path: Path) -> None:
    command = _docker_compose()
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = subprocess.run(
        [*command, "--env-file", str(env_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in REQUIRED},
    )
    assert result.returncode != 0
    assert "in .env" in result.stderr


def test_every_service_has_a_health_check_or_waits_on_a_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        conditioned = isinstance(depends, dict) and all(
            "condition" in dep for dep in depends.values()
        )
        assert "healthcheck" in service or (depends and conditioned), name


def test_every_dependency_of_a_service_is_conditioned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must name conditions"
        for dependency, rule in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in (
                "service_healthy",
                "service_started",
                "service_completed_successfully",
            )
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_lago_runs_from_its_published_images_with_every_part(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {name: service["image"].rpartition(":")[0] for name, service in services.items()}
    assert images["lago-api"] == "getlago/api"
    assert images["lago-worker"] == "getlago/api"
    assert images["lago-clock"] == "getlago/api"
    assert images["lago-migrate"] == "getlago/api"
    assert images["lago-front"] == "getlago/front"
    assert images["lago-pdf"] == "getlago/lago-gotenberg"
    assert images["lago-redis"] == "redis"
    assert "postgres" in images["lago-db"]
    assert services["lago-worker"]["command"] == ["./scripts/start.worker.sh"]
    assert services["lago-clock"]["command"] == ["./scripts/start.clock.sh"]
    lago_tags = {services[n]["image"].rpartition(":")[2] for n in ("lago-api", "lago-front")}
    assert len(lago_tags) == 1, "Lago's API and front end must run the same release"
    assert services["lago-api"]["environment"]["LAGO_PDF_URL"] == "http://lago-pdf:3000"


def test_api_worker_and_migrate_run_from_one_gateway_image(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = ("gateway", "gateway-worker", "gateway-migrate")
    assert len({services[name]["image"] for name in gateway}) == 1
    build = services["gateway"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert services["gateway"]["command"][:3] == ["gateway", "serve", "--no-worker"]
    assert "0.0.0.0" in services["gateway"]["command"]
    assert services["gateway-worker"]["command"] == ["gateway", "worker"]
    assert services["gateway-migrate"]["command"] == ["gateway", "migrate"]
    assert services["gateway-migrate"]["restart"] == "no"
    for name in ("gateway", "gateway-worker"):
        rule = services[name]["depends_on"]["gateway-migrate"]
        assert rule["condition"] == "service_completed_successfully"


def test_gateway_settings_in_compose_exist_in_the_settings_class(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("gateway", "gateway-worker", "gateway-migrate"):
        for variable in services[name]["environment"]:
            assert variable.startswith("GATEWAY_"), variable
            field = variable.removeprefix("GATEWAY_").lower()
            assert field in Settings.model_fields, f"{variable} is not a gateway setting"


def test_gateway_is_wired_to_lago_and_its_own_database(
    services: dict[str, dict[str, Any]],
) -> None:
    env = services["gateway"]["environment"]
    assert env["GATEWAY_LAGO_API_URL"] == "http://lago-api:3000"
    assert env["GATEWAY_LAGO_API_KEY"].startswith("${GATEWAY_LAGO_API_KEY")
    assert env["GATEWAY_LAGO_WEBHOOK_HMAC_KEY"].startswith("${GATEWAY_LAGO_WEBHOOK_HMAC_KEY")
    assert re.fullmatch(
        r"postgresql://gateway:\$\{GATEWAY_POSTGRES_PASSWORD[^}]*\}@gateway-db:5432/gateway",
        env["GATEWAY_DATABASE_URL"],
    )
    assert services["gateway-worker"]["environment"] == env
    assert "3000" in services["lago-api"]["healthcheck"]["test"][1]


def test_only_the_gateway_is_published_beyond_the_loopback_interface(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            if name != "gateway":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_every_variable_the_compose_file_reads_is_documented_in_the_env_example() -> None:
    documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), flags=re.M))
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert used - documented == set()
    assert documented - used == set(), "documented but never read by docker-compose.yml"


def test_gateway_variables_in_the_env_example_are_gateway_settings() -> None:
    text = ENV_EXAMPLE.read_text()
    compose_only = {"GATEWAY_POSTGRES_PASSWORD", "GATEWAY_PORT"}
    for variable in re.findall(r"^(GATEWAY_[A-Z0-9_]+)=", text, flags=re.M):
        if variable not in compose_only:
            assert variable.removeprefix("GATEWAY_").lower() in Settings.model_fields, variable
