"""Salesforce REST API simulator, speaking the documented wire format over real HTTP.

It follows ``crm-apis.md`` part B so the app's Salesforce adapter can be tested without an org: the
OAuth 2.0 client-credentials token endpoint, SOQL ``query`` / ``queryAll`` with ``nextRecordsUrl``
paging, sObject rows (create, read, update, delete), upsert by external id, describe, sObject
Collections, the replication resources (``updated`` / ``deleted``), ``Sforce-Limit-Info`` on every
answer and Salesforce's error array ``[{"message", "errorCode", "fields"}]`` (also for injected faults:
a 403 fault is REQUEST_LIMIT_EXCEEDED).

Strict where Salesforce is strict, because a simulator that accepts what the service rejects hides
bugs until production: SOQL string literals must be escaped (``'O\\'Brien'``), date literals unquoted,
AND/OR mixed only with parentheses; unknown objects and fields, read-only fields, over-long strings,
bad restricted-picklist values, bad ISO country codes, duplicate external ids and malformed ids are
refused with the service's error codes.

Lead conversion is not here on purpose: Salesforce converts leads with the SOAP ``convertLead()`` call
or Apex ``Database.convertLead``, and the REST API has no resource for it (SOAP API Developer Guide,
"convertLead()"; community code wraps it in a custom Apex REST class). A seeded lead can be marked
converted (``IsConverted``, ``ConvertedOpportunityId``) through the control API; such a lead refuses
updates (CANNOT_UPDATE_CONVERTED_LEAD).

The create side of the schema: the Tooling API creates custom fields and objects
(``POST /tooling/sobjects/CustomField`` / ``CustomObject``; ``GET /tooling/query``), and field-level
security is enforced: what is created is hidden from the API user until a PermissionSet with
FieldPermissions / ObjectPermissions on it is assigned to that user (``POST /sobjects/PermissionSet``,
``/FieldPermissions``, ``/ObjectPermissions``, ``/PermissionSetAssignment``). ``schema="provisioned"`` is a
bare org after cosell.py's Tooling creates plus the permission set an admin would have assigned.

Control API additions (besides the base class's): ``POST /_sim/seed``, ``GET /_sim/records/<Object>``,
``POST /_sim/clear``, ``POST /_sim/revoke-tokens``, ``POST /_sim/clients``, ``GET|PUT /_sim/api-usage``
(``{"used", "limit", "windowSeconds"}``: the daily allocation is a rolling window, 24 h unless shrunk),
``GET /_sim/users``, ``GET|POST /_sim/customizer`` (``{"customizer": false}``: the API user lacks
"Customize Application" / "Modify All Data"), ``GET /_sim/visible-fields/<Object>`` (what the integration
user's describe lists), ``POST /_sim/connector`` (``{"namespace": "pcref", "grant": true}``: install
Microsoft's co-sell connector package's fields, as an org that ran the Power Automate connector has them).

Modules, one concern each: ``schema`` (types of the schema as data), ``objects`` (standard objects from
the Object / Field Reference), ``setup`` (PermissionSet and its permission objects), ``cosell`` (what
provisioning for the sync creates, as Tooling bodies), ``connector`` (the co-sell connector package's
fields), ``tooling`` (the Tooling API: custom fields and objects), ``access`` (field-level security,
object permissions, customizer rights: each user's view of the org), ``countries`` (state and country
picklists), ``ids`` (15/18-character ids), ``errors``, ``wire`` (responses, versions, time), ``store``
(rows, recycle bin, stamps), ``seed`` (the org's users), ``writes`` (validation and writes), ``soql``
(lexer, parser), ``query`` (binding, filtering, projection), ``paging`` (query locators), ``describe``,
``auth`` (OAuth and sessions), ``records`` (REST resources), ``composite`` (sObject Collections), ``app``
(routing, limits, control API).
"""

from sandbox.sims.salesforce.app import SalesforceSimulator
from sandbox.sims.salesforce.errors import SalesforceError

__all__ = ["SalesforceError", "SalesforceSimulator"]
