"""Notifications: signed webhooks, Slack-compatible messages and e-mail, with retries."""
