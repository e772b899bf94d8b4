"""OData v4 literals, shared by the Partner Center and Dataverse clients (both speak OData filters)."""


def odata_string(value: str) -> str:
    """An OData string literal: single quotes doubled, so hostile values stay data."""
    return "'" + value.replace("'", "''") + "'"
