"""Creates, uploads and finalizes a ClearML Dataset from the folder argv[1]; prints its id."""
import sys

from clearml import Dataset


def main() -> None:
    dataset = Dataset.create(dataset_name="fidelity-data", dataset_project="Fidelity")
    dataset.add_files(sys.argv[1])
    dataset.upload()
    dataset.finalize()
    print(f"DATASET_ID={dataset.id}")


if __name__ == "__main__":
    main()
