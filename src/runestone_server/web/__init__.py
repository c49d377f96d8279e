"""The dashboard: server-rendered pages with cookie sessions and CSRF protection."""
