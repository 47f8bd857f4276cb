"""Local stand-ins for external services (fake Telegram Bot API) used by tests and the sandbox."""
