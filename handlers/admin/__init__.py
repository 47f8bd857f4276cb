"""The super admin's tools: commands, panel, user cards, announcements, statistics."""
