"""Running the per-file function over many files: in this process, a process pool, or on Dask.

Files are handed out in input order, at most a few per worker ahead, and results are taken back
in the same order; so memory stays flat however many files there are, and the ZIP, the reports
and the mapping come out in the same order whichever way the files ran.
"""

import collections
import concurrent.futures
import json
import os
import pickle
import sys
import tempfile


class Serial:
    """Runs each file in this process (``--jobs 1``): the same interface as the pools."""

    workers = 1

    def share(self, value, folder):
        """A handle to ``value`` that every worker's function resolves with :func:`resolve`
        (here: the value itself); ``folder`` is a scratch folder of this process."""
        return value

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

    def share(self, value, folder):
        """``value`` pickled once into ``folder``: each worker process loads it once (not once per file)."""
        handle, path = tempfile.mkstemp(suffix=".pickle", dir=folder)
        with os.fdopen(handle, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        return SharedFile(path)

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

    def share(self, value, folder):
        """``value`` scattered once to every worker; the tasks get it in place of the future."""
        return self._client.scatter(value, broadcast=True)

    def shutdown(self):
        self._executor.shutdown(wait=True)
        self._client.close()


class SharedFile:
    """A value a process pool's workers load from a file (see :meth:`ProcessPool.share`)."""

    def __init__(self, path):
        self.path = path


_loaded = {}  # path → value, in each worker process


def resolve(shared):
    """The value behind a handle from ``share`` (loaded once per process)."""
    if not isinstance(shared, SharedFile):
        return shared
    if shared.path not in _loaded:
        _loaded.clear()  # an earlier job's value
        with open(shared.path, "rb") as f:
            _loaded[shared.path] = pickle.load(f)
    return _loaded[shared.path]


def in_order(runner, function, spec, items, *args, ahead=4):
    """Yield ``function(spec, item, *args)`` for each item, in order, keeping ``ahead`` per worker
    queued."""
    pending = collections.deque()
    limit = max(1, runner.workers * ahead)
    for item in items:
        pending.append(runner.submit(function, spec, item, *args))
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
