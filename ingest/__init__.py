"""The ingest API: tokens, presigned upload URLs, and reads of jobs, logs and the leaderboard."""
