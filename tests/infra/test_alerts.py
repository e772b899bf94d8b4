"""The alerts (infra/app/alerts.bicep): deployed only with an e-mail, one action group mailing it,
three log search rules scoped to the app's Application Insights with the documented thresholds and
windows, and queries that read the lines the app writes (shared/telemetry.py)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from shared import telemetry
from shared.store.clients import POISON_SUFFIX
from shared.store.queues import POISON_QUEUES
from tests.infra import MAIN, REPO, Infra, Instance, Resource, Template, Unknown, infra, load, rel
from tests.infra.kql import ALERT_QUERIES, queries
from tests.infra.test_security import FORBIDDEN, looks_like_key

ALERTS_FILE = "infra/app/alerts.bicep"
EMAIL = "ops@contoso.com"
RULE_TYPE = "Microsoft.Insights/scheduledQueryRules"
GA_API_VERSION = "2023-12-01"  # the newest GA version of scheduledQueryRules (later ones are previews)

# Azure Monitor's log search alert template reference (resource-manager-alerts-log.md, 2021-08-01 and later).
ALLOWED_WINDOWS = {
    "PT1M": 60,
    "PT5M": 300,
    "PT10M": 600,
    "PT15M": 900,
    "PT30M": 1800,
    "PT45M": 2700,
    "PT1H": 3600,
    "PT2H": 7200,
    "PT3H": 10800,
    "PT4H": 14400,
    "PT5H": 18000,
    "PT6H": 21600,
    "P1D": 86400,
    "P2D": 172800,
}
ALLOWED_FREQUENCIES = {k: v for k, v in ALLOWED_WINDOWS.items() if k != "P2D"} | {"PT12H": 43200}

# What README.md, "Alerts", promises, rule by rule (thresholds at the parameters' defaults).
EXPECTED: dict[str, dict[str, Any]] = {
    "poison": {
        "query": "poison",
        "severity": 2,
        "evaluationFrequency": "PT5M",
        "windowSize": "PT15M",
        "criterion": {
            "timeAggregation": "Minimum",
            "metricMeasureColumn": "depth",
            "operator": "GreaterThan",
            "threshold": 0,
            "dimensions": [{"name": "queue", "operator": "Include", "values": ["*"]}],
        },
    },
    "failures": {
        "query": "failures",
        "severity": 2,
        "evaluationFrequency": "PT15M",
        "windowSize": "PT1H",
        "criterion": {"timeAggregation": "Count", "operator": "GreaterThan", "threshold": 5},
    },
    "no-poll": {
        "query": "no-poll",
        "severity": 1,
        "evaluationFrequency": "PT5M",
        "windowSize": "PT5M",
        "criterion": {
            "timeAggregation": "Total",
            "metricMeasureColumn": "polls",
            "operator": "LessThan",
            "threshold": 1,
        },
    },
}


@cache
def with_email(**params: Any) -> Infra:
    return Infra(params={"alertEmail": EMAIL, **params})


def alerts_instance(model: Infra) -> Instance:
    found = [i for i in model.instances if i.file.rel == ALERTS_FILE]
    assert len(found) == 1, f"expected main.bicep to deploy {ALERTS_FILE} once, found {len(found)}"
    return found[0]


def rules(model: Infra) -> dict[str, Resource]:
    """Alert rules by their name's suffix (alert-<token>-<suffix>)."""
    found: dict[str, Resource] = {}
    for rule in model.resources(RULE_TYPE):
        name = rule.get("name")
        assert isinstance(name, Template), f"{rule.where}: name {name} does not carry the resource token"
        match = re.fullmatch(r"alert-\{\?\}-([a-z-]+)", name.render())
        assert match, f"{rule.where}: name {name.render()} is not alert-<resourceToken>-<what>"
        assert name.unknowns()[0].source == "toLower(uniqueString(subscription().id, environmentName, location))"
        found[match[1]] = rule
    return found


def action_group(model: Infra) -> Resource:
    groups = model.resources("Microsoft.Insights/actionGroups")
    assert len(groups) == 1, [g.where for g in groups]
    return groups[0]


# --- deployed only with an e-mail -------------------------------------------------------------


def test_without_an_email_nothing_is_deployed() -> None:
    main = load(MAIN)
    param = main.get("param", "alertEmail")
    assert param is not None, f"{rel(MAIN)}: no alertEmail parameter"
    assert infra().root.evaluator.param("alertEmail") == "", f"{main.where(param.node)}: alertEmail must default to ''"
    entry = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]["alertEmail"]
    assert entry["value"] == "${AZURE_ALERT_EMAIL=}", "azd must pass an empty address unless one is set"
    instance = alerts_instance(infra())
    assert instance.condition is False, (
        f"{instance.caller.file.where(instance.module.node)}: the alerts module deploys without an e-mail "
        f"(condition {instance.condition})"
    )
    # Everything alerting lives in that one module: without an address nothing else is created or billed.
    alerting = infra().resources(RULE_TYPE) + infra().resources("Microsoft.Insights/actionGroups")
    outside = [r.where for r in alerting if r.instance.file.rel != ALERTS_FILE]
    assert not outside, f"alert resources outside {ALERTS_FILE}: {outside}"


def test_an_email_deploys_one_action_group_that_mails_it() -> None:
    model = with_email()
    assert alerts_instance(model).condition is True
    group = action_group(model)
    assert group.instance.file.rel == ALERTS_FILE
    properties = group.get("properties")
    assert properties["enabled"] is True, f"{group.where}: action group disabled"
    assert 1 <= len(properties["groupShortName"]) <= 12, f"{group.where}: groupShortName is 1-12 characters"
    assert properties["emailReceivers"] == [
        {"name": "operator", "emailAddress": EMAIL, "useCommonAlertSchema": True}
    ], f"{group.where}: {properties['emailReceivers']}"
    others = [key for key in properties if key.endswith("Receivers") and key != "emailReceivers"]
    assert not others, f"{group.where}: receivers nobody asked for: {others}"
    assert group.get("location") == "Global", f"{group.where}: action groups live in 'Global'"


# --- the three rules ------------------------------------------------------------------------


def test_the_rules_are_the_three_documented_ones() -> None:
    found = rules(with_email())
    assert set(found) == set(EXPECTED), f"rules {sorted(found)}, README documents {sorted(EXPECTED)}"
    problems = []
    for suffix, rule in found.items():
        want = EXPECTED[suffix]
        version = rule.decl.type_string.split("@", 1)[1]
        if version != GA_API_VERSION:
            problems.append(f"{rule.where}: api version {version}, expected the GA {GA_API_VERSION}")
        if rule.get("kind") != "LogAlert":
            problems.append(f"{rule.where}: kind {rule.get('kind')}")
        properties = rule.get("properties")
        for key in ("severity", "evaluationFrequency", "windowSize"):
            if properties.get(key) != want[key]:
                problems.append(f"{rule.where}: {key} {properties.get(key)!r}, expected {want[key]!r}")
        for key, value in (("enabled", True), ("autoMitigate", True)):
            if properties.get(key) is not value:
                problems.append(f"{rule.where}: {key} is {properties.get(key)!r}")
        if not (isinstance(properties.get("displayName"), str | Template) and properties.get("description")):
            problems.append(f"{rule.where}: say what the alert means (displayName, description)")
        criteria = properties["criteria"]["allOf"]
        if len(criteria) != 1:
            problems.append(f"{rule.where}: expected one condition, found {len(criteria)}")
            continue
        criterion = criteria[0]
        shown = {k: v for k, v in criterion.items() if k not in ("query", "failingPeriods")}
        if shown != want["criterion"]:
            problems.append(f"{rule.where}: condition {shown}, expected {want['criterion']}")
        if criterion.get("failingPeriods") != {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}:
            problems.append(f"{rule.where}: failingPeriods {criterion.get('failingPeriods')}")
        if criterion["query"] != (ALERT_QUERIES / f"{want['query']}.kql").read_text():
            problems.append(f"{rule.where}: the query is not infra/app/alerts/{want['query']}.kql")
    assert not problems, "\n".join(problems)


def test_thresholds_and_the_poll_window_follow_the_azd_parameters() -> None:
    found = rules(with_email(alertFailureThreshold=12, alertPollWindow="PT15M"))
    assert found["failures"].get("properties", "criteria", "allOf")[0]["threshold"] == 12
    assert found["no-poll"].get("properties", "windowSize") == "PT15M"
    entries = json.loads((REPO / "infra" / "main.parameters.json").read_text())["parameters"]
    assert entries["alertFailureThreshold"]["value"] == "${AZURE_ALERT_FAILURE_THRESHOLD=5}"
    assert entries["alertPollWindow"]["value"] == "${AZURE_ALERT_POLL_WINDOW=PT5M}"


def test_every_rule_reads_the_apps_application_insights_and_mails_the_action_group() -> None:
    model = with_email()
    group = action_group(model)
    problems = []
    for suffix, rule in rules(model).items():
        scopes = rule.get("properties", "scopes")
        source = model.origin(scopes[0]) if isinstance(scopes, list) and len(scopes) == 1 else None
        if source is None or source[2] != "id" or source[1].resource_type != "Microsoft.Insights/components":
            problems.append(f"{rule.where}: {suffix} is not scoped to one Application Insights component: {scopes}")
            continue
        component = _existing_component_name(model, source[0], source[1].name)
        if component is None or component[1].existing or component[2] != "name":
            problems.append(f"{rule.where}: the component is not the one monitoring.bicep creates")
        elif component[0].file.rel != "infra/app/monitoring.bicep":
            problems.append(f"{rule.where}: the component comes from {component[0].file.rel}")
        else:
            [created] = [r for r in model.resources() if r.instance is component[0] and r.decl is component[1]]
            if rule.get("location") != created.get("location"):
                problems.append(f"{rule.where}: in {rule.get('location')}, its component in {created.get('location')}")
        groups = rule.get("properties", "actions", "actionGroups")
        target = model.origin(groups[0]) if isinstance(groups, list) and len(groups) == 1 else None
        if target is None or (target[1].name, target[2]) != (group.decl.name, "id"):
            problems.append(f"{rule.where}: {suffix} does not notify the action group: {groups}")
    assert not problems, "\n".join(problems)


def _existing_component_name(model: Infra, owner: Instance, symbol: str) -> Any:
    """Where the name of an ``existing`` component comes from: (instance, declaration, property)."""
    existing = [
        r
        for r in model.resources("Microsoft.Insights/components", include_existing=True)
        if r.instance is owner and r.decl.name == symbol and r.decl.existing
    ]
    if len(existing) != 1:
        return None
    name = existing[0].get("name")
    return model.origin(name) if isinstance(name, Unknown) else None


# --- windows --------------------------------------------------------------------------------


def _allowed(param: str) -> list[str]:
    main = load(MAIN)
    decl = main.get("param", param)
    assert decl is not None, f"{rel(MAIN)}: no parameter {param}"
    assert "allowed" in decl.decorators, f"{main.where(decl.node)}: {param} has no @allowed list"
    arguments = decl.decorators["allowed"].child_by_field_name("arguments")
    values = infra().root.evaluator.eval(arguments.named_children[0])
    assert isinstance(values, list)
    return values


@pytest.mark.parametrize("window", _allowed("alertPollWindow"))
def test_every_allowed_poll_window_makes_valid_rules(window: str) -> None:
    problems = []
    for rule in rules(with_email(alertPollWindow=window)).values():
        size, frequency = rule.get("properties", "windowSize"), rule.get("properties", "evaluationFrequency")
        if size not in ALLOWED_WINDOWS:
            problems.append(f"{rule.where}: windowSize {size} is not one Azure Monitor accepts")
        if frequency not in ALLOWED_FREQUENCIES:
            problems.append(f"{rule.where}: evaluationFrequency {frequency} is not one Azure Monitor accepts")
        elif size in ALLOWED_WINDOWS and ALLOWED_FREQUENCIES[frequency] > ALLOWED_WINDOWS[size]:
            problems.append(f"{rule.where}: evaluated every {frequency} over {size}: samples would be skipped")
    assert not problems, "\n".join(problems)


def poll_interval_seconds(ncrontab: str) -> int:
    """The period of a regular NCRONTAB schedule (seconds field 0): ``0 */N * * * *`` or ``0 M */N * * *``."""
    second, minute, hour, *rest = ncrontab.split()
    assert second == "0", f"not a regular schedule: {ncrontab}"
    assert all(field == "*" for field in rest), f"not a regular schedule: {ncrontab}"
    if hour == "*":
        if minute.startswith("*/"):
            return int(minute[2:]) * 60
        assert minute.isdigit(), ncrontab
        return 3600
    assert minute.isdigit(), ncrontab
    assert hour.startswith("*/"), ncrontab
    return int(hour[2:]) * 3600


def test_poll_interval_reader() -> None:
    assert poll_interval_seconds("0 */1 * * * *") == 60
    assert poll_interval_seconds("0 */5 * * * *") == 300
    assert poll_interval_seconds("0 7 * * * *") == 3600
    assert poll_interval_seconds("0 0 */2 * * *") == 7200


@pytest.mark.parametrize(
    ("schedule", "window"),
    [("0 */1 * * * *", "PT5M"), ("0 */2 * * * *", "PT10M"), ("0 */5 * * * *", "PT15M"), ("0 */15 * * * *", "PT45M")],
)
def test_the_poll_window_is_the_smallest_allowed_one_covering_three_polls(schedule: str, window: str) -> None:
    """README's table of poll schedules and windows follows the rounding rule."""
    allowed = sorted(_allowed("alertPollWindow"), key=ALLOWED_WINDOWS.__getitem__)
    needed = 3 * poll_interval_seconds(schedule)
    assert next(w for w in allowed if ALLOWED_WINDOWS[w] >= needed) == window
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"\|\s*`{re.escape(schedule)}`\s*\|\s*`{window}`\s*\|", readme), (
        f"README.md: no row | `{schedule}` | `{window}` | in the poll-window table"
    )


def test_the_default_poll_window_covers_three_default_polls() -> None:
    schedule = infra().root.evaluator.param("crmPollSchedule")
    window = infra().root.evaluator.param("alertPollWindow")
    allowed = sorted(_allowed("alertPollWindow"), key=ALLOWED_WINDOWS.__getitem__)
    needed = 3 * poll_interval_seconds(schedule)
    assert window == next(w for w in allowed if ALLOWED_WINDOWS[w] >= needed), (
        f"{rel(MAIN)}: alertPollWindow {window} is not the smallest allowed window covering 3 x {schedule}"
    )


# --- the queries and the lines the app writes --------------------------------------------------


def test_each_query_reads_the_line_the_emitter_writes() -> None:
    """The column regexes of each query against ``telemetry.line`` (the emit points have their own tests)."""
    found = queries()
    assert set(found) == {"poison", "failures", "no-poll"}
    poison = telemetry.line("poison_depth", 3, queue="referral-events-poison", oldest_age_s=1200)
    assert found["poison"].read(poison) == {"depth": 3, "queue": "referral-events-poison"}
    failed = telemetry.line("sync_failed", 1, direction="pc-to-crm", outcome="failed", referral="x")
    assert found["failures"].read(failed) == {"direction": "pc-to-crm", "outcome": "failed"}
    polled = telemetry.line("poll_succeeded", 1, crm="dynamics", records=0, duration_ms=12)
    assert found["no-poll"].read(polled) == {}
    # ...and each query keeps only its own signal.
    assert found["poison"].read(failed) is None
    assert found["failures"].read(polled) is None
    assert found["no-poll"].read(poison) is None
    assert found["no-poll"].read("CRM poll: nothing changed; watermark - -> -; calls {}") is None


def test_queries_hold_no_key_material() -> None:
    found = [
        f"{rel(path)}:{number}"
        for path in sorted(ALERT_QUERIES.glob("*.kql"))
        for number, text in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(text) or looks_like_key(text)
    ]
    assert not found, found


def test_every_poison_queue_the_bicep_creates_is_sampled() -> None:
    created = {
        r.get("name")
        for r in infra().resources("Microsoft.Storage/storageAccounts/queueServices/queues")
        if str(r.get("name")).endswith(POISON_SUFFIX)
    }
    assert created, "the Bicep creates no poison queue"
    assert created == set(POISON_QUEUES), (
        f"the Bicep creates poison queues {sorted(created)}; shared/store/queues.py samples {sorted(POISON_QUEUES)}"
    )


def test_signal_lines_reach_application_insights_unsampled() -> None:
    """Sampling would drop or thin out the lines the rules count (a sampled trace stands for several),
    and a level above Information would drop them all: host.json must let them through whole."""
    host = json.loads((REPO / "host.json").read_text())
    logging_section = host.get("logging", {})
    sampling = logging_section.get("applicationInsights", {}).get("samplingSettings", {})
    if sampling.get("isEnabled", True):
        excluded = {t.strip() for t in sampling.get("excludedTypes", "Request").split(";")}
        assert "Trace" in excluded, f"host.json: traces are sampled (excludedTypes {sorted(excluded)})"
        assert "Trace" not in {t.strip() for t in sampling.get("includedTypes", "").split(";")}
    levels = logging_section.get("logLevel", {})
    category = "Function.crm_to_partner_center.User"  # where the Python worker's logs land
    matching = [key for key in levels if key != "default" and (category + ".").startswith(key + ".")]
    level = levels[max(matching, key=len)] if matching else levels.get("default", "Information")
    assert level in ("Trace", "Debug", "Information"), f"host.json: {category} logs at {level}, above Information"
