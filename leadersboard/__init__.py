"""Code shared by the LeadersBoard services: models, settings, store and queue clients, the CLI."""
