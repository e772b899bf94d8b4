"""azure.yaml: azd deploys this folder as the Python function app of service `api`, from the Bicep
in infra/."""

from __future__ import annotations

import yaml

from tests.infra import REPO, infra, rel

AZURE_YAML = REPO / "azure.yaml"


def where(needle: str) -> str:
    for number, line in enumerate(AZURE_YAML.read_text().splitlines(), 1):
        if needle in line:
            return f"{rel(AZURE_YAML)}:{number}"
    return rel(AZURE_YAML)


def load_azure_yaml() -> dict:
    document = yaml.safe_load(AZURE_YAML.read_text())
    assert isinstance(document, dict), f"{rel(AZURE_YAML)}: not a YAML mapping"
    return document


def test_azure_yaml_declares_the_api_function_service() -> None:
    document = load_azure_yaml()
    assert document.get("name"), f"{rel(AZURE_YAML)}:1: azd needs a project name"
    services = document.get("services")
    assert isinstance(services, dict), f"{where('services')}: no services"
    assert "api" in services, f"{where('services')}: no service `api`"
    api = services["api"]
    expected = {"project": ".", "language": "python", "host": "function"}
    wrong = {key: api.get(key) for key, value in expected.items() if api.get(key) != value}
    assert not wrong, f"{where('api:')}: {wrong}, expected {expected}"
    project = (REPO / api["project"]).resolve()
    assert (project / "function_app.py").is_file(), f"{where('project:')}: no function_app.py in {project}"
    assert (project / "host.json").is_file(), f"{where('project:')}: no host.json in {project}"


def test_azure_yaml_uses_the_bicep_in_infra() -> None:
    document = load_azure_yaml()
    infra_section = document.get("infra") or {}
    assert infra_section.get("provider", "bicep") == "bicep", f"{where('provider')}: not Bicep"
    assert infra_section.get("path", "infra") == "infra", f"{where('path')}: not infra/"
    assert infra_section.get("module", "main") == "main", f"{where('module')}: not main.bicep"


def test_every_service_has_a_tagged_resource() -> None:
    tagged = {
        site.get("tags", "azd-service-name") for site in infra().resources("Microsoft.Web/sites") if site.get("tags")
    }
    missing = [name for name in load_azure_yaml()["services"] if name not in tagged]
    assert not missing, f"{where('services')}: no resource tagged azd-service-name for {missing}"
