"""Running the per-file function over many files: in this process, a process pool, or on Dask.

Files are handed out in input order, at most a few per worker ahead, and results are taken back
in the same order; so memory stays flat however many files there are, and the ZIP, the reports
and the mapping come out in the same order whichever way the files ran.
"""

import collections
import concurrent.futures
import json
import sys


class Serial:
    """Runs each file in this process (``--jobs 1``): the same interface as the pools."""

    workers = 1

    def submit(self, function, *args):
        future = concurrent.futures.Future()
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed back through the future, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self):
        pass


class ProcessPool:
    """A pool of ``workers`` processes (``--jobs N``)."""

    def __init__(self, workers):
        self.workers = workers
        self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers)

    def submit(self, function, *args):
        return self._pool.submit(function, *args)

    def shutdown(self):
        self._pool.shutdown(cancel_futures=True)


class DaskCluster:
    """The workers of a Dask cluster at ``address`` (``--dask``), through its concurrent.futures
    executor: each file is one task, run by the same function as in a process pool.

    The workers must import this same dcmstudio (``pip install`` it in their environment) and reach
    the input paths and the output folder (a shared file system); for a ZIP output the bytes come
    back to this process.
    """

    def __init__(self, address):
        try:
            import distributed
        except ImportError:
            from dcmstudio.cli.files import UsageError
            raise UsageError("--dask needs the 'distributed' package: pip install distributed") from None
        self._client = distributed.Client(address)
        self.workers = max(1, sum(self._client.nthreads().values()))
        self._executor = self._client.get_executor(pure=False)

    def submit(self, function, *args):
        return self._executor.submit(function, *args)

    def shutdown(self):
        self._executor.shutdown(wait=True)
        self._client.close()


def in_order(runner, function, spec, items, ahead=4):
    """Yield ``function(spec, item)`` for each item, in order, keeping ``ahead`` per worker queued."""
    pending = collections.deque()
    limit = max(1, runner.workers * ahead)
    for item in items:
        pending.append(runner.submit(function, spec, item))
        if len(pending) >= limit:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class Progress:
    """A bar on a terminal (tqdm), a plain line per file otherwise; nothing with ``--quiet``."""

    def __init__(self, total, quiet, stream=None):
        self.stream = stream or sys.stderr
        self.total = total
        self.done = 0
        self.bar = None
        self.quiet = quiet
        if not quiet and self.stream.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="file", file=self.stream)
            except ImportError:
                pass

    def update(self, result):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if "error" in result:
                self.bar.write(f"failed: {result['file']}: {result['error']}", file=self.stream)
        elif not self.quiet or "error" in result:
            state = f"failed: {result['error']}" if "error" in result else "ok"
            print(f"[{self.done}/{self.total}] {result['file']}: {state}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Reports:
    """The per-file reports as JSON lines (a file, or standard output) and the failures."""

    def __init__(self, path):
        self.stream = open(path, "w", encoding="utf-8") if path else sys.stdout
        self.owned = bool(path)
        self.failed = []

    def write(self, record):
        if "error" in record:
            self.failed.append({"file": record["file"], "message": record["error"]})
        self.stream.write(json.dumps(record, default=str) + "\n")

    def close(self):
        self.stream.flush()
        if self.owned:
            self.stream.close()
