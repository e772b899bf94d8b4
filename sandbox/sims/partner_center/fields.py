"""Referral property names as the wire spells them.

The service deserialises member names case-insensitively, so PascalCase input (as in some Microsoft
samples: ``Substatus``, ``ConsentToContact``) is stored and returned in the API's camelCase.
"""

from __future__ import annotations

from typing import Any

# Properties of the Referral resource and its parts (reference §1.8).
_KNOWN_FIELD_NAMES = """
    id engagementId organizationId organizationName name externalReferenceId createdDateTime updatedDateTime
    expirationDateTime acceptedDateTime status substatus statusReason type qualification referralSource
    callToAction customerProfile consent details customerMarketplaceIntent team inviteContext eTag target
    direction links salesStage campaignId partnerRole solutionArea solutionPlay notes dealValue currency
    closingDateTime requirements address size ids email firstName lastName phoneNumber contactPreference
    invitedBy assistanceRequestCode consentToContact consentToToShareInfoWithOthers
    consentToMicrosoftToContactSpecificPartners consentToShareReferralWithMicrosoftSellers
"""
KNOWN_FIELDS: tuple[str, ...] = tuple(_KNOWN_FIELD_NAMES.split())
# ``ReferralType`` is the create page's name for ``type`` (reference §1.5).
CANONICAL: dict[str, str] = {name.lower(): name for name in KNOWN_FIELDS} | {"referraltype": "type"}


def canonical_name(name: str) -> str:
    return CANONICAL.get(name.lower(), name)


def canonical_keys(value: Any) -> Any:
    """Known property names in any case (``Substatus``, ``ConsentToContact``) become their wire spelling."""
    if isinstance(value, dict):
        return {
            (canonical_name(key) if isinstance(key, str) else key): canonical_keys(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [canonical_keys(item) for item in value]
    return value


def deep_merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    """Merge ``changes`` into ``target`` in place: nested objects merge, everything else is replaced."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value
