"""Uploads the folder argv[1] as artifact argv[2] of the task named by CLEARML_TASK_ID (the SDK
zips a folder), as a user would publish an MMAR in ClearML."""

import sys

from clearml import Task


def main() -> None:
    task = Task.init(auto_connect_frameworks=False, auto_resource_monitoring=False)
    task.upload_artifact(sys.argv[2], artifact_object=sys.argv[1], wait_on_upload=True)
    task.flush(wait_for_uploads=True)


if __name__ == "__main__":
    main()
