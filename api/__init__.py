"""The web process: a Starlette app serving the webhook, /tick, /health, /metrics and operator pages."""
