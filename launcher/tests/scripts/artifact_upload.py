"""Uploads the folder argv[1] as artifact argv[2] of a new task (the SDK zips a folder), as a
user would publish an MMAR in ClearML; prints TASK_ID=<id>."""

import sys

from clearml import Task


def main() -> None:
    task = Task.init(
        project_name="Launcher",
        task_name="mmar-publisher",
        reuse_last_task_id=False,
        auto_connect_frameworks=False,
        auto_resource_monitoring=False,
    )
    task.upload_artifact(sys.argv[2], artifact_object=sys.argv[1], wait_on_upload=True)
    task.flush(wait_for_uploads=True)
    print(f"TASK_ID={task.id}")
    task.close()


if __name__ == "__main__":
    main()
