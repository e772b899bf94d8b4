"""The function app's library: settings, clients, the sync engine, storage (see README, *Layout*)."""

# Shown by GET /api/manage/status and the dashboard; APP_BUILD adds a deployment's own build id.
__version__ = "0.1.0"
