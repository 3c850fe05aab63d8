"""The tools layer: what people and machines drive the platform with, on top of the services.

- `tools.cli`: the `leadersboard` command (submit and follow jobs, check a submission, administer, run the stack).
- `tools.stack`: the local single-machine stack (`leadersboard up`) and its processes.
- `tools.bridge`: the SeaweedFS-to-JetStream event bridge the local stack runs in MinIO's place.

Tools may import the services and the kernel (`leadersboard`); nothing below imports a tool.
"""
