"""Pure domain rules, settings and small shared pieces with no web or worker stack."""
