"""Fetches dataset argv[1] with Dataset.get(id).get_local_copy() and prints each file as JSON
lines {path, content}, as the launcher would read it inside a task."""
import json
import os
import sys

from clearml import Dataset


def main() -> None:
    root = Dataset.get(dataset_id=sys.argv[1]).get_local_copy()
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            full = os.path.join(folder, name)
            with open(full) as f:
                print(json.dumps({"path": os.path.relpath(full, root), "content": f.read()}))


if __name__ == "__main__":
    main()
