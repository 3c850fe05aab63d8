"""The dispatcher: turns manifest bucket events into validated, recorded, queued jobs."""
