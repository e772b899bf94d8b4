"""Dataverse (Dynamics 365) Web API simulator, speaking the real wire format over real HTTP.

It follows ``crm-apis.md`` part A so the app's real adapter can be tested without an org:
OData queries with server-driven paging, ``@odata.bind`` lookups stored as ``_<nav>_value``,
single-valued and collection-valued ``$expand``, create / update / upsert with ``If-Match`` /
``If-None-Match``, alternate keys (``cosell_referralid`` when provisioned), the ``WinOpportunity`` /
``LoseOpportunity`` actions, ``$batch`` (change sets applied atomically, ``$n`` Content-ID references,
``Prefer: odata.continue-on-error``; a batch is one request in ``stats``, its operations are logged
with a ``$batch `` route and counted in ``batch_operations``) and Dataverse's
``{"error": {"code": "0x…", "message": "…"}}`` error body (also for injected faults).

Users and owners: ``systemusers`` holds one seeded user ("Sandbox Seller", whose id is the WhoAmI
``UserId``, :attr:`DataverseSimulator.user_id`); every account, contact, opportunity and lead is
created owned by that user unless ``ownerid@odata.bind`` names another user or a team. ``ownerid``
is typed ``principal`` (its only property is ``ownerid``); the owner's columns come through
``owninguser`` / ``owningteam``.

``createdon`` / ``modifiedon`` have second precision (``2026-11-21T10:00:00Z``) and never go
backwards; every write to a row (PATCH, upsert, the close actions) bumps its ``modifiedon`` and
``versionnumber``. Writes to child rows (``cosell_solution``) do not touch the parent opportunity,
as in Dataverse, so a ``modifiedon`` watermark on opportunities does not see solution changes.

The service's stricter rules are enforced on purpose (unknown properties, case-sensitive
navigation properties, DateOnly format, state/status pairs, no closing an opportunity by PATCH),
because a simulator that accepts what the real service rejects hides bugs until production.

Schema can be created at run time through the metadata Web API (``POST EntityDefinitions``,
``…/Attributes``, ``…/Keys``, ``RelationshipDefinitions``, ``GlobalOptionSetDefinitions``, ``PublishXml``,
``PublishAllXml``), so a ``bare`` org can be provisioned the way an app would do it; what is created
is served by the read endpoints and enforced by the records API like the provisioned schema. Names
need a publisher's customization prefix, new alternate keys are ``Pending`` until their index is
built, and the caller can lose its System Customizer privileges (metadata writes then answer 403).

Service protection API limits (``protection.py``): per user, 6,000 requests and 1,200 s of execution time
in a 300 s sliding window and 52 concurrent requests, each answered past the limit with 429, ``Retry-After``
and the documented code; every answer carries ``x-ms-ratelimit-burst-remaining-xrm-requests`` and
``x-ms-ratelimit-time-remaining-xrm-requests``. Configurable (``limits=``, ``PUT /_sim/service-protection``).

Control API additions (besides the base class's): ``POST /_sim/seed``, ``GET /_sim/records/<set>``,
``POST /_sim/clear`` (back to the org as it started, schema included), ``GET``/``POST
/_sim/privileges`` (``{"customizer": false}`` or ``{"missing": ["prvCreateEntityKey"]}``), ``GET``/
``POST /_sim/key-index`` (``{"seconds": 0.5}`` for new keys' index build time, ``{"complete": true}``
to finish the pending builds now), ``POST /_sim/connector`` (install Microsoft's co-sell connector
solution's ``msft_`` columns, as an org that ran the Power Automate connector has them).

Modules, one concern each: ``schema`` (the types and the Web API view of a schema), ``tables``
(standard tables as data, from the entity reference), ``cosell`` (the sync's custom schema, present
when ``schema="provisioned"``), ``connector`` (the co-sell connector solution's columns, present once
installed), ``errors``, ``wire`` (responses, keys, time), ``store`` (rows,
indexes, versions), ``seed`` (the rows every org starts with), ``query`` (OData options), ``reads``
(projection, paging), ``writes`` (validation, state rules, actions), ``records`` (record endpoints),
``batch`` (``$batch``: multipart parsing, change sets, references, the multipart answer),
``metadata`` (``EntityDefinitions`` / ``RelationshipDefinitions`` / ``GlobalOptionSetDefinitions``
reads), ``definitions`` (metadata create bodies checked and turned into schema data), ``customize``
(the create side: publishers' prefixes, privileges, key index builds), ``protection`` (service protection
API limits), ``app`` (routing, control API).
"""

from sandbox.sims.dataverse.app import DataverseSimulator
from sandbox.sims.dataverse.errors import DataverseError

__all__ = ["DataverseError", "DataverseSimulator"]
