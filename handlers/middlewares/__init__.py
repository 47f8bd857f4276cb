"""Outer middlewares: context (user row, role, language) then the access check."""
