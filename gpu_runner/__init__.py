"""The GPU runner: one process per GPU, pulling jobs from the work queue and running them."""
