"""Notifications: e-mails people about what concerns them, once."""
