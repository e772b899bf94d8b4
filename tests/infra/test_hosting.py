"""Flex Consumption hosting: plan, runtime, package deployment, scale limits, what Flex refuses,
and the template's scope."""

from __future__ import annotations

from tests.infra import MAIN, Template, Unknown, app_settings, app_settings_resource, infra, load, rel

# Flex Consumption rejects these: the runtime is functionAppConfig.runtime, the package comes from
# functionAppConfig.deployment, and host storage is identity-based.
NOT_ON_FLEX = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
)


def test_template_scope_is_subscription_and_documented() -> None:
    main = load(MAIN)
    assert main.target_scope() == "subscription", f"{rel(MAIN)}: targetScope is {main.target_scope()}"
    header = MAIN.read_text().split("targetScope", 1)[0]
    assert "Scope: SUBSCRIPTION" in header, f"{rel(MAIN)}:1: the header comment does not state the scope"
    groups = infra().resources("Microsoft.Resources/resourceGroups")
    assert len(groups) == 1, f"{rel(MAIN)}: expected the template to create its resource group"


def test_plan_is_flex_consumption() -> None:
    plan = infra().resource_of_type("Microsoft.Web/serverfarms")
    assert plan.get("sku") == {"name": "FC1", "tier": "FlexConsumption"}, f"{plan.where}: sku {plan.get('sku')}"
    assert plan.get("properties", "reserved") is True, f"{plan.where}: a Flex plan is Linux (reserved: true)"
    site = infra().resource_of_type("Microsoft.Web/sites")
    farm = site.get("properties", "serverFarmId")
    assert isinstance(farm, Unknown), f"{site.where}: serverFarmId {farm}"
    assert farm.source == f"{plan.decl.name}.id", f"{site.where}: serverFarmId {farm} is not the Flex plan"
    assert site.get("kind") == "functionapp,linux", f"{site.where}: kind {site.get('kind')}"


def test_python_311_runs_from_the_deployment_container() -> None:
    site = infra().resource_of_type("Microsoft.Web/sites")
    config = site.get("properties", "functionAppConfig")
    assert isinstance(config, dict), f"{site.where}: no functionAppConfig"
    assert config.get("runtime") == {"name": "python", "version": "3.11"}, f"{site.where}: {config.get('runtime')}"
    storage = config["deployment"]["storage"]
    assert storage.get("type") == "blobContainer", f"{site.where}: deployment storage {storage}"
    containers = infra().resources("Microsoft.Storage/storageAccounts/blobServices/containers")
    assert len(containers) == 1, [c.where for c in containers]
    container_name = containers[0].get("name")
    value = storage.get("value")
    assert isinstance(value, Template), f"{site.where}: deployment storage value {value}"
    name_parts = container_name.parts if isinstance(container_name, Template) else (container_name,)
    assert value.parts[1:] == name_parts, f"{site.where}: package container {value} is not {container_name}"
    endpoint = infra().origin(value.parts[0])
    assert endpoint, f"{site.where}: the blob endpoint cannot be traced"
    assert endpoint[1].resource_type == "Microsoft.Storage/storageAccounts", f"{site.where}: {value}"
    assert endpoint[2] == "properties.primaryEndpoints.blob", f"{site.where}: {value}"


def test_scale_limits_are_modest() -> None:
    site = infra().resource_of_type("Microsoft.Web/sites")
    scale = site.get("properties", "functionAppConfig", "scaleAndConcurrency")
    assert scale.get("instanceMemoryMB") == 2048, f"{site.where}: instanceMemoryMB {scale.get('instanceMemoryMB')}"
    maximum = scale.get("maximumInstanceCount")
    assert maximum == 40, f"{site.where}: maximumInstanceCount defaults to {maximum}"
    main = load(MAIN)
    param = main.get("param", "maximumInstanceCount")
    assert param is not None, f"{rel(MAIN)}: maximumInstanceCount is not a parameter"


def test_no_settings_that_flex_consumption_rejects() -> None:
    settings = app_settings()
    found = [name for name in NOT_ON_FLEX if name in settings]
    assert not found, f"{app_settings_resource().where}: not valid on Flex Consumption: {found}"


def test_azd_finds_the_app_by_its_service_tag() -> None:
    site = infra().resource_of_type("Microsoft.Web/sites")
    tags = site.get("tags")
    assert isinstance(tags, dict), f"{site.where}: tags cannot be read: {tags}"
    assert tags.get("azd-service-name") == "api", f"{site.where}: no azd-service-name tag 'api' (azure.yaml service)"
