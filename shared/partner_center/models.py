"""Pydantic models of the Partner Center referral resource and webhook event.

Parsing is tolerant on purpose: Microsoft's own samples mix ``substatus`` and ``Substatus``, send
``dealValue`` as a number or a string, ``customerProfile.ids`` as ``{}`` or ``[]``, and new fields
appear without notice. Keys match case-insensitively, unknown fields are kept (``extra="allow"``)
and enums stay strings so a new value never breaks a sync.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.partner_center.ids import is_referral_id

TERMINAL_SUBSTATUSES = frozenset({"won", "lost", "declined", "expired"})
_MAX_DROPPED = 50
_MAX_DEAL_VALUE = Decimal("1e15")


class MalformedReferral(ValueError):
    """Partner Center sent a referral that cannot be read at all (no usable id): retrying will not help."""


class PcModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _match_keys_case_insensitively(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            alias = field.alias or name
            known[alias.lower()] = alias
            known[name.lower()] = alias
        return {(known.get(k.lower(), k) if isinstance(k, str) else k): v for k, v in data.items()}

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Address(PcModel):
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    region: str | None = None


class ContactPreference(PcModel):
    locale: str | None = None
    disable_notifications: bool | None = None


class Member(PcModel):
    first_name: str | None = None
    last_name: str | None = None
    phone_number: str | None = None
    email: str | None = None
    contact_preference: ContactPreference | None = None


class CustomerProfile(PcModel):
    name: str | None = None
    address: Address | None = None
    size: str | None = None
    team: list[Member] = Field(default_factory=list)
    ids: Any = None

    @field_validator("team", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or []


class Consent(PcModel):
    consent_to_to_share_info_with_others: bool | None = None
    consent_to_contact: bool | None = None
    consent_to_microsoft_to_contact_specific_partners: bool | None = None
    consent_to_share_referral_with_microsoft_sellers: bool | None = None


class InvitedBy(PcModel):
    organization_id: str | None = None
    organization_name: str | None = None


class InviteContext(PcModel):
    notes: str | None = None
    invited_by: InvitedBy | None = None
    assistance_request_code: str | None = None


class SolutionTag(PcModel):
    id: str | None = None
    name: str | None = None
    type: str | None = None


class Tag(PcModel):
    id: str | None = None


class Requirements(PcModel):
    industries: list[Tag] = Field(default_factory=list)
    products: list[Tag] = Field(default_factory=list)
    services: list[Tag] = Field(default_factory=list)
    solutions: list[SolutionTag] = Field(default_factory=list)

    @field_validator("industries", "products", "services", "solutions", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or []


class Details(PcModel):
    notes: str | None = None
    deal_value: Decimal | None = None
    currency: str | None = None
    closing_date_time: dt.datetime | None = None
    requirements: Requirements | None = None

    @field_validator("deal_value", mode="before")
    @classmethod
    def _tolerant_decimal(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"dealValue {value!r} is not a number") from exc
        # Beyond any CRM's money column (Dataverse: 922,337,203,685,477) or not a number at all.
        if not amount.is_finite() or abs(amount) >= _MAX_DEAL_VALUE:
            raise ValueError("dealValue is out of range")
        return amount


class Target(PcModel):
    id: str | None = None
    type: str | None = None


class Referral(PcModel):
    id: str
    engagement_id: str | None = None
    name: str | None = None
    external_reference_id: str | None = None
    created_date_time: dt.datetime | None = None
    updated_date_time: dt.datetime | None = None
    expiration_date_time: dt.datetime | None = None
    status: str | None = None
    substatus: str | None = None
    status_reason: str | None = None
    type: str | None = None
    qualification: str | None = None
    customer_profile: CustomerProfile = Field(default_factory=CustomerProfile)
    consent: Consent = Field(default_factory=Consent)
    details: Details = Field(default_factory=Details)
    team: list[Member] = Field(default_factory=list)
    invite_context: InviteContext | None = None
    e_tag: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None
    direction: str | None = None
    target: list[Target] = Field(default_factory=list)
    referral_program: str | None = None
    tracking_info: dict[str, Any] | None = None

    @field_validator("team", "target", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or []

    @field_validator("customer_profile", "consent", "details", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    # Fields whose values could not be read and were left out, as "details.dealValue" paths.
    _unreadable: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def parse(cls, data: Any) -> Referral:
        """Validate, leaving out what cannot be read instead of failing the whole referral.

        Microsoft's data varies (a string ``dealValue``, a bad date, an object where a list belongs):
        one unreadable field costs that field, named in :attr:`unreadable`, not the sync. A referral
        without a readable ``id`` is :class:`MalformedReferral`.
        """
        if not isinstance(data, dict):
            raise MalformedReferral("the referral is not a JSON object")
        body = data
        dropped: list[str] = []
        while True:
            try:
                referral = cls.model_validate(body)
            except ValidationError as exc:
                if body is data:
                    body = copy.deepcopy(data)
                paths = [tuple(error["loc"]) for error in exc.errors()]
                if any(path[:1] == ("id",) for path in paths) or len(dropped) > _MAX_DROPPED:
                    raise MalformedReferral("the referral has no readable id") from None
                for path in paths:
                    if _drop(body, path):
                        dropped.append(".".join(str(part) for part in path))
                if not paths:
                    raise MalformedReferral("the referral could not be read") from None
                continue
            referral._unreadable = sorted(set(dropped))
            return referral

    @property
    def unreadable(self) -> list[str]:
        return list(self._unreadable)

    @property
    def is_terminal(self) -> bool:
        """Won, Lost, Declined and Expired referrals accept no further writes."""
        return (self.substatus or "").lower() in TERMINAL_SUBSTATUSES

    @property
    def microsoft_crm_id(self) -> str | None:
        info = self.tracking_info or {}
        lowered = {k.lower(): v for k, v in info.items()}
        value = lowered.get("microsoftmsxid")
        return str(value) if value else None


def _drop(body: Any, path: tuple[Any, ...]) -> bool:
    """Remove the value at ``path`` (keys matched case-insensitively, as the models read them)."""
    node = body
    for part in path[:-1]:
        node = _child(node, part)
        if node is None:
            return False
    last = path[-1] if path else None
    if isinstance(node, dict) and isinstance(last, str):
        key = next((k for k in node if isinstance(k, str) and k.lower() == last.lower()), None)
        if key is not None:
            del node[key]
            return True
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        del node[last]
        return True
    return False


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return next((v for k, v in node.items() if isinstance(k, str) and k.lower() == part.lower()), None)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


class WebhookEvent(PcModel):
    """What Partner Center POSTs: a notification that carries a URI, never the referral itself."""

    event_name: str
    resource_uri: str | None = None
    resource_name: str | None = None
    audit_uri: str | None = None
    resource_change_utc_date: dt.datetime | None = None

    @property
    def referral_id(self) -> str | None:
        """The last path segment of ``ResourceUri`` when it is a referral id (a GUID); the hosts differ."""
        if not self.resource_uri:
            return None
        path = self.resource_uri.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        segment = path.rsplit("/", 1)[-1] if "/" in path else ""
        return segment if is_referral_id(segment) else None
