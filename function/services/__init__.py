"""The Cloud Functions behind main.py and what they need of the outside world (webhooks, checkouts)."""
