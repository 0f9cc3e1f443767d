"""Running the per-file function over many files: in this process, a process pool, or on Dask.

Files are handed out in input order, at most a few per worker ahead, and results are taken back
in the same order; so memory stays flat however many files there are, and the ZIP, the reports
and the mapping come out in the same order whichever way the files ran.
"""

import collections
import concurrent.futures
import gc
import itertools
import json
import os
import pickle
import statistics
import sys
import tempfile
import time


class Serial:
    """Runs each file in this process (``--jobs 1``): the same interface as the pools."""

    workers = 1
    batch = 1  # files per task
    started = 0  # worker processes were never started

    def begin(self, function, count=None):
        """A pass over ``count`` files (None: unknown) with ``function`` starts (see
        :class:`ProcessPool`)."""

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
    """Up to ``workers`` processes (``--jobs N``), started only when they pay for themselves.

    Each pass over the files (deid learns, then writes) starts in this process: its first file
    (which fills the caches: pydicom's dictionary, the IOD table, the series' layout to replay),
    then :data:`PROBE_FILES` more, timed. The workers start only if the files left would take
    this process at least :data:`POOL_AFTER_SECONDS` and a core is idle (the load average); with
    ``always``, right after the first file. Otherwise the pass goes on here: for a few hundred
    files, starting processes and handing them work costs more than it saves.

    Workers are forked from this process on Linux, so they start with every module imported and
    the caches warm instead of importing and filling them again; elsewhere a fork server that has
    imported the per-file code starts them (or they are spawned). Files go to them ``batch`` at
    a time: one task per file costs about as much as editing the file.

    Parameters
    ----------
    workers : int
    always : bool
    batch : int
        Files per task: 1 where each result carries the output's bytes (a ZIP), so that no more
        files are held in memory at once than without batches.
    """

    def __init__(self, workers, always=False, batch=8):
        self.workers = workers
        self.always = always
        self._batch = batch
        self._pool = None
        self._here = 0  # files still to run in this process before deciding
        self._timed = []  # seconds per file of the timed ones
        self._left = None  # files of the pass not submitted yet (None: unknown)
        self.started = 0  # how many times workers were started (for the report)

    @property
    def batch(self):
        return self._batch if self._pool is not None else 1

    def begin(self, function, count=None):
        self.shutdown()  # its workers were forked warm for the previous pass
        self._here = 1 if self.always else 1 + PROBE_FILES
        self._timed = []
        self._left = count

    def submit(self, function, *args):
        files = len(args[2]) if function is run_batch else 1
        if self._left is not None:
            self._left -= files
        if self._pool is None and self._here == 0 and self._worth_it():
            # what this process holds now is never collected in the forked workers: their
            # garbage collector then leaves its pages alone instead of copying them
            gc.freeze()
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=_context())
            self.started += 1
        if self._pool is not None:
            return self._pool.submit(function, *args)
        started = time.perf_counter()
        future = Serial().submit(function, *args)
        if self._here > 0:
            self._here -= 1
            if self._here < PROBE_FILES or self.always:  # the first file's warm-up is not timed
                self._timed.append((time.perf_counter() - started) / files)
        return future

    def _worth_it(self):
        """Whether to start the workers now (asked once per pass, after the timed files)."""
        if self.always:
            return True
        self._here = -1  # decided: not asked again in this pass
        if not self._left or not self._timed:
            return False
        left = self._left + 1  # this file too
        # the load average counts this process too (it has been running): the others' load is
        # what keeps a core from being idle
        others = max(0.0, os.getloadavg()[0] - 1) if hasattr(os, "getloadavg") else 0.0
        idle = (os.cpu_count() or 1) - others
        return statistics.median(self._timed) * left >= POOL_AFTER_SECONDS and idle >= 1

    def share(self, value, folder):
        """``value`` pickled once into ``folder``: each worker process loads it once (not once per
        file); forked workers find it already loaded."""
        handle, path = tempfile.mkstemp(suffix=".pickle", dir=folder)
        with os.fdopen(handle, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        _loaded.clear()
        _loaded[path] = value
        return SharedFile(path)

    def shutdown(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


# The worker processes start only when the files left would keep this process busy this long.
POOL_AFTER_SECONDS = 1.0
# Files timed in this process (after the first) to estimate that.
PROBE_FILES = 8


def _context():
    """How worker processes start: ``fork`` on Linux, else ``forkserver`` with the per-file code
    imported once, else ``spawn`` (each worker imports it)."""
    import multiprocessing
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["dcmstudio.cli.tasks"])
        return context
    return multiprocessing.get_context("spawn")


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

    batch = 1
    started = 1

    def begin(self, function, count=None):
        pass

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


def in_order(runner, function, spec, items, *args, ahead=4, count=None):
    """Yield ``function(spec, item, *args)`` for each of the ``count`` items, in order, keeping
    ``ahead`` tasks per worker queued (each of ``runner.batch`` files)."""
    runner.begin(function, count)
    pending = collections.deque()
    limit = max(1, runner.workers * ahead)
    items = iter(items)
    batch = list(itertools.islice(items, 1))
    while batch:
        pending.append(runner.submit(run_batch, function, spec, batch, *args))
        if len(pending) >= limit:
            yield from pending.popleft().result()
        batch = list(itertools.islice(items, runner.batch))
    while pending:
        yield from pending.popleft().result()


def run_batch(function, spec, items, *args):
    """``[function(spec, item, *args) for item in items]``: one task of a runner."""
    return [function(spec, item, *args) for item in items]


def cut_short(result):
    """What an edit's report says of an input cut short inside its pixel data, or None (see
    :func:`dcmstudio.jobs.edit_item`)."""
    return (result.get("report") or {}).get("cut_short")


class Progress:
    """A bar on a terminal (tqdm), a plain line per file otherwise; nothing with ``--quiet``, whose
    failures the command lists once, at the end."""

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
            elif cut_short(result):
                self.bar.write(f"cut short: {result['file']}: {cut_short(result)}", file=self.stream)
        elif not self.quiet:
            cut = cut_short(result)
            state = (f"failed: {result['error']}" if "error" in result
                     else f"ok, cut short as its input was: {cut}" if cut else "ok")
            print(f"[{self.done}/{self.total}] {result['file']}: {state}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Reports:
    """The per-file reports as JSON lines (a file, or standard output) and the failures. With
    ``quiet`` and no file, no line is written: ``--quiet`` prints nothing but the failures (on
    standard error, by the command), as dcmodify and gdcmanon print nothing when all went well."""

    def __init__(self, path, quiet=False):
        self.stream = open(path, "w", encoding="utf-8") if path else open(os.devnull, "w") if quiet else sys.stdout
        self.owned = bool(path) or quiet
        self.failed = []

    def write(self, record):
        if "error" in record:
            self.failed.append({"file": record["file"], "message": record["error"]})
        report, encoded = _encoded
        _encoded[:] = [None, None]
        if report is not None and record.get("report") is report and next(reversed(record)) == "report":
            rest = json.dumps({key: value for key, value in record.items() if key != "report"}, default=str)
            self.stream.write(with_key(rest, "report", encoded) + "\n")
        else:
            self.stream.write(json.dumps(record, default=str) + "\n")

    def close(self):
        self.stream.flush()
        if self.owned:
            self.stream.close()


_encoded = [None, None]  # the report encode_report encoded last, and its text


def encode_report(report):
    """``report`` as JSON text, as its file's line in :class:`Reports` will hold it, which then
    takes this text instead of encoding it again (deid writes each report twice)."""
    _encoded[:] = [report, json.dumps(report, default=str)]
    return _encoded[1]


def with_key(encoded, key, value):
    """The JSON object text ``encoded`` with ``key`` and the JSON text ``value`` after its last
    member: what ``json.dumps`` writes for the object with that key added last."""
    return f"{encoded[:-1]}{', ' if encoded != '{}' else ''}{json.dumps(key)}: {value}}}"
