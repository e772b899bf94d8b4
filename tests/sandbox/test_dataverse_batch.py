"""``POST $batch``: change sets are atomic, ``$n`` references, the simulator's rules hold inside, counting.

Source for each rule: "Execute batch operations using the Web API" (Microsoft Learn) and
"Service protection API limits" (a batch is one request for the number-of-requests limit);
see ``sandbox/sims/dataverse/batch.py``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox.sims.base import ServerThread
from sandbox.sims.dataverse import DataverseSimulator
from tests.sandbox.dataverse_support import API, error_of

Part = tuple[str, str, dict[str, Any] | None, str | None]  # (method, url, json body, Content-ID)


@dataclass
class Answer:
    """One inner response of a batch answer."""

    status: int
    headers: dict[str, str]
    body: Any
    content_id: str | None
    in_change_set: bool


def _request_part(method: str, url: str, body: dict[str, Any] | None, content_id: str | None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    text = f"{head}\r\n{method} {url} HTTP/1.1\r\n"
    if body is not None:
        text += f"Content-Type: application/json; type=entry\r\n\r\n{json.dumps(body)}\r\n"
    else:
        text += "\r\n\r\n"
    return text


def batch_body(*items: Part | list[Part], boundary: str = "batch_T1") -> str:
    """A batch body: a tuple is a request on its own, a list is a change set."""
    out = ""
    for number, item in enumerate(items):
        out += f"--{boundary}\r\n"
        if isinstance(item, list):
            change_set = f"changeset_T{number}"
            out += f"Content-Type: multipart/mixed; boundary={change_set}\r\n\r\n"
            for part in item:
                out += f"--{change_set}\r\n" + _request_part(*part)
            out += f"--{change_set}--\r\n"
        else:
            out += _request_part(*item)
    return out + f"--{boundary}--\r\n"


def send(client: httpx.Client, *items: Part | list[Part], prefer: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_T1"}
    if prefer:
        headers["Prefer"] = prefer
    return client.post("/$batch", content=batch_body(*items).encode(), headers=headers)


def answers(response: httpx.Response) -> list[Answer]:
    """The answer parsed with the standard library's MIME parser (independent of the app's parser)."""
    raw = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.get_content_type() == "multipart/mixed"
    found: list[Answer] = []

    def read(part: Any, in_change_set: bool) -> None:
        assert part.get_content_type() == "application/http"
        assert part["Content-Transfer-Encoding"] == "binary"
        payload = part.get_payload(decode=True).decode()
        head, _, body = payload.partition("\r\n\r\n")
        status_line, *header_lines = head.split("\r\n")
        assert status_line.startswith("HTTP/1.1 ")
        headers = dict(line.split(": ", 1) for line in header_lines if line)
        text = body.strip()
        found.append(
            Answer(
                int(status_line.split(" ")[1]),
                headers,
                json.loads(text) if text else None,
                part["Content-ID"],
                in_change_set,
            )
        )

    for part in message.iter_parts():
        if part.get_content_type() == "multipart/mixed":
            assert part.get_boundary().startswith("changesetresponse_")
            for inner in part.iter_parts():
                read(inner, True)
        else:
            read(part, False)
    assert message.get_boundary().startswith("batchresponse_")
    return found


ACCOUNTS = f"{API}/accounts"
CONTACTS = f"{API}/contacts"


def test_a_change_set_creates_rows_that_reference_each_other_and_a_get_reads_them(
    client: httpx.Client, sim: DataverseSimulator
) -> None:
    response = send(
        client,
        [
            ("POST", ACCOUNTS, {"name": "Batch Account"}, "1"),
            ("POST", CONTACTS, {"lastname": "Batch", "parentcustomerid_account@odata.bind": "$1"}, "2"),
            ("PATCH", "$1", {"primarycontactid@odata.bind": "$2"}, "3"),
        ],
        ("GET", f"{CONTACTS}?$select=lastname,_parentcustomerid_value", None, None),
    )

    assert response.status_code == 200
    parsed = answers(response)
    assert [(a.status, a.content_id, a.in_change_set) for a in parsed] == [
        (204, "1", True),
        (204, "2", True),
        (204, "3", True),
        (200, None, False),
    ]
    [account] = sim.records("accounts")
    [contact] = sim.records("contacts")
    assert parsed[0].headers["OData-EntityId"].endswith(f"/accounts({account['accountid']})")
    assert contact["_parentcustomerid_value"] == account["accountid"]
    assert account["_primarycontactid_value"] == contact["contactid"]
    assert parsed[3].body["value"] == [
        {
            "@odata.etag": f'W/"{contact["versionnumber"]}"',
            "lastname": "Batch",
            "_parentcustomerid_value": account["accountid"],
            "contactid": contact["contactid"],
        }
    ]


def test_a_failure_in_a_change_set_rolls_back_what_it_wrote_and_is_the_batch_answer(
    client: httpx.Client, sim: DataverseSimulator
) -> None:
    existing = sim.insert("accounts", {"name": "Before"})
    response = send(
        client,
        [
            ("POST", ACCOUNTS, {"name": "Rolled back"}, "1"),
            ("PATCH", f"{ACCOUNTS}({existing})", {"name": "Renamed"}, "2"),
            ("POST", CONTACTS, {"lastname": "x" * 51, "parentcustomerid_account@odata.bind": "$1"}, "3"),
        ],
        ("POST", ACCOUNTS, {"name": "Never sent"}, None),
    )

    assert response.status_code == 400
    [error] = answers(response)  # one answer for the failed change set, nothing after it
    assert error.status == 400
    assert error.body["error"]["code"] == "0x80044331"
    assert "The length of the 'lastname' attribute of the 'contact' entity" in error.body["error"]["message"]
    assert [a["name"] for a in sim.records("accounts")] == ["Before"]
    assert sim.records("contacts") == []


def test_without_continue_on_error_the_batch_stops_at_the_first_failure(
    client: httpx.Client, sim: DataverseSimulator
) -> None:
    response = send(
        client,
        ("POST", ACCOUNTS, {"name": "First"}, None),
        ("POST", ACCOUNTS, {"nosuchcolumn": "x"}, None),
        ("POST", ACCOUNTS, {"name": "Third"}, None),
    )

    assert response.status_code == 400
    assert [a.status for a in answers(response)] == [204, 400]
    assert sorted(a["name"] for a in sim.records("accounts")) == ["First"]  # no change set: First stays


def test_continue_on_error_runs_every_request_and_answers_200(client: httpx.Client, sim: DataverseSimulator) -> None:
    response = send(
        client,
        ("POST", ACCOUNTS, {"nosuchcolumn": "x"}, None),
        ("GET", f"{ACCOUNTS}(00000000-0000-0000-0000-000000000001)", None, None),
        ("POST", ACCOUNTS, {"name": "Third"}, None),
        prefer="odata.continue-on-error",
    )

    assert response.status_code == 200
    parsed = answers(response)
    assert [a.status for a in parsed] == [400, 404, 204]
    assert "The property 'nosuchcolumn' does not exist" in parsed[0].body["error"]["message"]
    assert [a["name"] for a in sim.records("accounts")] == ["Third"]


def test_the_services_rules_hold_inside_a_batch(client: httpx.Client, sim: DataverseSimulator) -> None:
    """Wrong navigation case, closing by statecode and an unknown table answer as they do alone."""
    account = sim.insert("accounts", {"name": "Customer"})
    opportunity = sim.insert("opportunities", {"name": "Deal", "_parentaccountid_value": account})
    cases: list[tuple[Part, str]] = [
        (
            ("POST", CONTACTS, {"lastname": "A", "ParentCustomerId_account@odata.bind": f"/accounts({account})"}, "1"),
            "An undeclared property 'ParentCustomerId_account'",
        ),
        (
            ("PATCH", f"{API}/opportunities({opportunity})", {"statecode": 1, "statuscode": 3}, "1"),
            "use the WinOpportunity or LoseOpportunity action",
        ),
        (("POST", f"{API}/nosuchset", {"name": "x"}, "1"), "Resource not found for the segment 'nosuchset'"),
    ]
    for part, message in cases:
        alone = client.request(part[0], part[1].removeprefix(API), json=part[2])
        batched = send(client, [part])
        [answer] = answers(batched)
        assert batched.status_code == alone.status_code == answer.status
        assert message in error_of(alone)["message"]
        assert answer.body == alone.json()
    assert sim.get("opportunities", opportunity)["statecode"] == 0
    assert sim.records("contacts") == []


def test_an_upsert_by_alternate_key_and_a_close_action_in_one_change_set(
    client: httpx.Client, sim: DataverseSimulator
) -> None:
    key = f"{API}/opportunities(cosell_referralid='R-''1')"
    response = send(
        client,
        [
            ("PATCH", f"{key}?$select=opportunityid", {"name": "Won deal"}, "1"),
            (
                "POST",
                f"{API}/WinOpportunity",
                {"Status": 3, "OpportunityClose": {"subject": "Won", "opportunityid@odata.bind": "$1"}},
                "2",
            ),
        ],
    )

    assert response.status_code == 200, response.text
    assert [a.status for a in answers(response)] == [204, 204]
    [row] = sim.records("opportunities")
    assert (row["cosell_referralid"], row["statecode"], row["statuscode"]) == ("R-'1", 1, 3)
    [close] = sim.records("opportunitycloses")
    assert close["_opportunityid_value"] == row["opportunityid"]

    again = send(
        client,
        [
            ("PATCH", key, {"name": "Won deal"}, "1"),
            (
                "POST",
                f"{API}/WinOpportunity",
                {"Status": 3, "OpportunityClose": {"subject": "Won", "opportunityid@odata.bind": "$1"}},
                "2",
            ),
        ],
    )
    assert again.status_code == 400  # already closed: the close fails, so the whole change set does
    assert len(sim.records("opportunitycloses")) == 1


def test_return_representation_inside_a_batch_answers_201_with_the_row(client: httpx.Client) -> None:
    body = batch_body(
        [
            (
                "PATCH",
                f"{API}/accounts(00000000-0000-0000-0000-0000000000aa)?$select=accountid",
                {"name": "Upserted"},
                "1",
            )
        ]
    )
    body = body.replace(
        "Content-Type: application/json; type=entry", "Content-Type: application/json\r\nPrefer: return=representation"
    )
    response = client.post(
        "/$batch", content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=batch_T1"}
    )

    [answer] = answers(response)
    assert answer.status == 201
    assert answer.body["accountid"] == "00000000-0000-0000-0000-0000000000aa"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([[("GET", ACCOUNTS, None, "1")]], "GET requests are not allowed within a change set"),
        (
            [
                [
                    ("POST", CONTACTS, {"lastname": "A", "parentcustomerid_account@odata.bind": "$1"}, "2"),
                    ("POST", ACCOUNTS, {"name": "Later"}, "1"),
                ]
            ],
            "Content-ID Reference: '$1' does not exist in the batch context.",
        ),
        ([("POST", f"{API}/$batch", {"name": "x"}, None)], "cannot contain another batch"),
        ([("GET", ACCOUNTS, None, None)] * 1001, "maximum number of requests in a batch is 1000"),
    ],
    ids=["get-in-change-set", "reference-before-declaration", "nested-batch", "over-1000"],
)
def test_malformed_batches_are_refused(
    client: httpx.Client, sim: DataverseSimulator, items: list[Any], message: str
) -> None:
    response = send(client, *items)

    assert response.status_code == 400
    text = response.text
    assert message in text
    assert sim.records("accounts") == []
    assert sim.records("contacts") == []


def test_a_body_that_is_not_multipart_or_not_closed_is_refused(client: httpx.Client) -> None:
    not_multipart = client.post("/$batch", json={"requests": []})
    unclosed = client.post(
        "/$batch",
        content=batch_body(("GET", ACCOUNTS, None, None)).removesuffix("--batch_T1--\r\n").encode(),
        headers={"Content-Type": "multipart/mixed; boundary=batch_T1"},
    )
    plain_part = client.post(
        "/$batch",
        content=b"--batch_T1\r\nContent-Type: text/plain\r\n\r\nGET /accounts HTTP/1.1\r\n--batch_T1--\r\n",
        headers={"Content-Type": "multipart/mixed; boundary=batch_T1"},
    )

    for response, words in (
        (not_multipart, "multipart/mixed"),
        (unclosed, "closing delimiter"),
        (plain_part, "application/http"),
    ):
        assert response.status_code == 400
        assert words in error_of(response)["message"]


def test_a_batch_is_one_request_for_service_protection_and_each_operation_is_logged(
    client: httpx.Client, sim: DataverseSimulator
) -> None:
    send(
        client,
        [("POST", ACCOUNTS, {"name": "A"}, "1"), ("POST", ACCOUNTS, {"name": "B"}, "2")],
        ("GET", ACCOUNTS, None, None),
    )

    stats = sim.stats_snapshot()
    assert stats["total"] == 1
    assert stats["routes"] == {f"POST {API}/$batch": 1}
    assert stats["batch_operations"] == 3
    inner = [r for r in sim.recorded() if r.route.startswith("$batch ")]
    assert [(r.method, r.path, r.status) for r in inner] == [
        ("POST", ACCOUNTS, 204),
        ("POST", ACCOUNTS, 204),
        ("GET", ACCOUNTS, 200),
    ]
    assert inner[0].body == {"name": "A"}
    sim.reset_stats()
    assert sim.stats_snapshot()["batch_operations"] == 0


def test_an_injected_fault_refuses_the_whole_batch(client: httpx.Client, sim: DataverseSimulator) -> None:
    sim.set_faults({"rate": 1.0, "statuses": [503], "routes": [f"POST {API}/$batch"], "max_faults": 1})

    refused = send(client, [("POST", ACCOUNTS, {"name": "A"}, "1")])
    accepted = send(client, [("POST", ACCOUNTS, {"name": "A"}, "1")])

    assert refused.status_code == 503
    error_of(refused)
    assert accepted.status_code == 200
    assert [a["name"] for a in sim.records("accounts")] == ["A"]


def test_inner_requests_run_as_the_batch_caller() -> None:
    sim = DataverseSimulator(token_validator=lambda token: token == "good-token")
    server = ServerThread(sim).start()
    try:
        with httpx.Client(base_url=server.url + API, timeout=10) as client:
            anonymous = send(client, [("POST", ACCOUNTS, {"name": "A"}, "1")])
            client.headers["Authorization"] = "Bearer good-token"
            signed = send(client, [("POST", ACCOUNTS, {"name": "A"}, "1")])
    finally:
        server.stop()

    assert anonymous.status_code == 401
    assert signed.status_code == 200
    assert [a["name"] for a in sim.records("accounts")] == ["A"]
