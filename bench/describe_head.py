"""Time describing the files of a folder from their 64 KiB heads: pydicom's path and the fast path.

    python bench/describe_head.py ~/.cache/dcmstudio/bench-data/D1

Prints per-file milliseconds (best of 3 passes) for catalog.describe_file with the fast path off
and on, and how many files the fast path answered. ``node bench/describe_head_pyodide.mjs FOLDER``
runs the same in the page's runtime.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))

from dcmstudio import catalog, header  # noqa: E402

HEAD_SIZE = 64 * 1024


def heads(folder):
    files = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            files.append((path, name, f.read(HEAD_SIZE)))
    return files


def per_file_ms(files, fast_path):
    fast_describe = header.describe_head
    if not fast_path:
        header.describe_head = lambda head, size, name: None
    try:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for path, name, head in files:
                catalog.describe_file(path, name, head=head)
            best = min(best, time.perf_counter() - start)
    finally:
        header.describe_head = fast_describe
    return 1000 * best / len(files)


def main(folder):
    files = heads(folder)
    answered = sum(header.describe_head(head, os.path.getsize(path), name) is not None
                   for path, name, head in files)
    slow = per_file_ms(files, fast_path=False)
    fast = per_file_ms(files, fast_path=True)
    return (f"{len(files)} files, fast path answered {answered}: pydicom {slow:.3f} ms/file, "
            f"fast {fast:.3f} ms/file ({slow / fast:.1f}x)")


if __name__ == "__main__":
    print(main(sys.argv[1]))
