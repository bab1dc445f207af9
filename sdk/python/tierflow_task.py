"""Task-side helper for tierflow tasks: params, streamed inputs, data-wait
accounting and checkpoints (docs/task-helpers.md). Standard library only; copy this one
file next to a task, or put sdk/python on PYTHONPATH.

    import tierflow_task as tf

    epochs = int(tf.param("epochs"))                # the stage must reference or declare it
    for i in range(tf.shard_count("shards")):
        with tf.open_shard("shards", i) as f:      # waits until shard i is there
            train_on(f.read())
    step_path = tf.checkpoint_path(epoch)           # write the checkpoint's files here
    tf.commit_checkpoint(epoch, loss=0.12)          # then commit it
    tf.save_checkpoint(epoch, {"w.bin": weights})   # or: snapshot, written and committed
                                                    # in the background
    latest = tf.latest_checkpoint()                 # (step, path) or None

The module-level functions use one `Task` built from os.environ; a `Task`
can also be built from any mapping (tests do). A Task is safe to use from
several threads. sdk/cpp/tierflow_task.h is the same API in C++.
"""

import json
import os
import re
import shutil
import stat
import sys
import threading
import time

__all__ = [
    "TierflowError", "Task", "param",
    "input_path", "shards", "shard_count", "shard_path", "open_shard", "waited_seconds",
    "checkpoint_dir", "checkpoint_path", "commit_checkpoint", "latest_checkpoint",
    "save_checkpoint", "wait_checkpoint",
]

# Polling for a streamed file that is not there yet: from 1 ms, doubling, up to 4 ms
# (a stat each time: the wait ends at most 4 ms after the file lands, not 20).
_FIRST_POLL = 0.001
_MAX_POLL = 0.004
_STEP_NAME = re.compile(r"^step-([0-9]{8,})$")
_MARKER_NAME = re.compile(r"^step-([0-9]{8,})\.committed$")


class TierflowError(RuntimeError):
    """A task-side error: a variable that is not set, a bad manifest, a
    checkpoint that cannot be written. The message says what to fix."""


class Task:
    """The task contract, read from `environ` (os.environ by default)."""

    def __init__(self, environ=None):
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._inputs = {}  # upper-case name -> _Input
        self._waited = 0.0
        self._asked_steps = set()  # steps checkpoint_path was called for
        # save_checkpoint: one save in flight at a time, and the staging
        # buffers it copied into, reused by the next save (name -> bytearray).
        self._save_lock = threading.RLock()
        self._saving = None  # _Save
        self._staging = {}

    # -- params -----------------------------------------------------------

    def param(self, name):
        """$TIERFLOW_PARAM_<NAME>: the param's value as text (a list param's
        items joined by commas). A stage is given only the params it
        references or declares; asked for one it was not given, this raises
        an error that says how to declare it."""
        if not isinstance(name, str) or not name:
            raise TierflowError("a param name must be a non-empty string, got %r" % (name,))
        variable = "TIERFLOW_PARAM_" + name.upper()
        value = self._environ.get(variable)
        if value is not None:
            return value
        withheld = self._environ.get("TIERFLOW_WITHHELD_PARAMS")
        if withheld is None:
            raise TierflowError("%s is not set: param '%s' was not given to this task (run it "
                                "with tierflow, or set %s by hand)" % (variable, name, variable))
        for declared in withheld.split(","):
            if declared and declared.upper() == name.upper():
                raise TierflowError(
                    "param '%s' was not given to stage '%s': declare it with "
                    "`params: [%s]` (or `params: all`) in the stage"
                    % (declared, self._environ.get("TIERFLOW_STAGE", "?"), declared))
        raise TierflowError("param '%s' is not a param of pipeline '%s' (declare it under the "
                            "pipeline's params:)" % (name, self._environ.get("TIERFLOW_PIPELINE", "?")))

    # -- inputs -----------------------------------------------------------

    def input_path(self, name):
        """$TIERFLOW_INPUT_<NAME>: the input's path on the task's working tier."""
        value = self._lookup("TIERFLOW_INPUT_", name)
        if not value:
            raise TierflowError(
                "TIERFLOW_INPUT_%s is not set: '%s' is not an input of this task "
                "(declare it under the stage's inputs:)" % (name.upper(), name))
        return value

    def shards(self, name):
        """The input's regular files as paths relative to input_path(name):
        for a streamed input, in the order the worker copies them (its
        manifest); otherwise every file under the folder, sorted."""
        return list(self._input(name).files)

    def shard_count(self, name):
        return len(self._input(name).files)

    def shard_path(self, name, i):
        """The absolute path of file i of the input, once it exists. For a
        streamed input, first tells the copier that the reader is at i
        (`<manifest>.next`), then waits for the file, polling with a backoff
        of 1 to 4 ms; a wait is added to waited_seconds() and to
        $TIERFLOW_DATA_WAIT_FILE. Raises TierflowError when the copier
        reports in `<manifest>.failed` that the file will not come."""
        entry = self._input(name)
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError("shard index must be an int, got %r" % (i,))
        if i < 0 or i >= len(entry.files):
            raise IndexError("input %s has %d files, no file %d"
                             % (name, len(entry.files), i))
        path = entry.path_of(i)
        if entry.manifest is None:
            if not _is_regular_file(path):
                raise TierflowError("input %s: %s is gone" % (name, path))
            return path
        _write_atomic(entry.manifest + ".next", "%d\n" % i)
        if _is_regular_file(path):
            return path
        started = time.monotonic()
        delay = _FIRST_POLL
        try:
            while True:
                time.sleep(delay)
                if _is_regular_file(path):
                    break
                failure = _read_failure(entry.manifest)
                if failure is not None:
                    raise TierflowError(
                        "input %s: file %d (%s) will not come: the copy failed: %s"
                        % (name, i, entry.files[i], failure))
                delay = min(delay * 2, _MAX_POLL)
        finally:
            self._account(time.monotonic() - started, name, i)
        return path

    def open_shard(self, name, i, mode="rb", **kwargs):
        """open(shard_path(name, i), mode): waits as shard_path does."""
        return open(self.shard_path(name, i), mode, **kwargs)

    def waited_seconds(self):
        """Seconds this process has waited for streamed files so far."""
        with self._lock:
            return self._waited

    # -- checkpoints --------------------------------------------------------

    def checkpoint_dir(self):
        """$TIERFLOW_CHECKPOINT_DIR, created if missing."""
        value = self._environ.get("TIERFLOW_CHECKPOINT_DIR")
        if not value:
            raise TierflowError(
                "TIERFLOW_CHECKPOINT_DIR is not set: add `checkpoints: true` (or "
                "`checkpoints: {keep: N}`) to the stage to give the task a checkpoint folder")
        os.makedirs(value, exist_ok=True)
        return value

    def checkpoint_path(self, step):
        """The folder for checkpoint `step`: $TIERFLOW_CHECKPOINT_DIR/step-%08d,
        created. An uncommitted folder left by an earlier attempt is emptied
        the first time this process asks for it; a committed one is refused."""
        step = _check_step(step)
        directory = self.checkpoint_dir()
        path = os.path.join(directory, "step-%08d" % step)
        if os.path.lexists(path + ".committed"):
            raise TierflowError(
                "checkpoint %d is already committed (%s.committed): a committed "
                "checkpoint is never modified; write a new step" % (step, path))
        with self._lock:
            asked_before = step in self._asked_steps
            self._asked_steps.add(step)
        if not asked_before and os.path.lexists(path):
            _remove_tree(path)
        os.makedirs(path, exist_ok=True)
        return path

    def commit_checkpoint(self, step, /, **metadata):
        """Commits checkpoint `step`: fsyncs every file of its folder, then
        writes step-%08d.committed (JSON {"step": step, **metadata})
        atomically. From then on the folder must not change; the worker
        flushes it to a durable tier. Returns the marker's path."""
        return self._commit(_check_step(step), _marker_text("commit_checkpoint", step, metadata))

    def _commit(self, step, text):
        directory = self.checkpoint_dir()
        path = os.path.join(directory, "step-%08d" % step)
        marker = path + ".committed"
        if os.path.lexists(marker):
            raise TierflowError("checkpoint %d is already committed (%s)" % (step, marker))
        if not os.path.isdir(path):
            raise TierflowError("checkpoint %d has no folder %s: write its files into "
                                "checkpoint_path(%d) first" % (step, path, step))
        _sync_tree(path)
        _write_atomic(marker, text, sync=True)
        _sync_dir(directory)
        return marker

    def save_checkpoint(self, step, files, /, **metadata):
        """Saves checkpoint `step` without waiting for storage. `files` maps
        each file's path in the checkpoint folder ("weights.bin",
        "optim/state.bin") to its bytes: bytes, bytearray, memoryview or any
        C-contiguous buffer (a numpy array). The call copies every buffer
        into staging memory this Task keeps (and reuses while a file keeps
        its size) and returns; a background thread then writes the files
        into checkpoint_path(step) and commits them with `metadata`, as
        commit_checkpoint does. The caller may change its buffers as soon as
        the call returns.

        One save is in flight at a time: a call first waits for the one
        before, so measure the time blocked around this call. A background
        failure is raised by the next save_checkpoint or wait_checkpoint
        (and printed to stderr when it happens). Before it exits normally
        the process waits for the save in flight."""
        step = _check_step(step)
        text = _marker_text("save_checkpoint", step, metadata)
        views = _checkpoint_buffers(files)
        with self._save_lock:
            self.wait_checkpoint()
            marker = os.path.join(self.checkpoint_dir(), "step-%08d.committed" % step)
            if os.path.lexists(marker):
                raise TierflowError("checkpoint %d is already committed (%s)" % (step, marker))
            staging = {}
            for name, view in views:
                buffer = self._staging.get(name)
                if buffer is None or len(buffer) != view.nbytes:
                    buffer = bytearray(view.nbytes)
                memoryview(buffer)[:] = view
                staging[name] = buffer
            self._staging = staging  # a file no longer saved frees its buffer
            save = _Save(step)
            save.thread = threading.Thread(
                target=self._write_checkpoint, args=(save, list(staging.items()), text),
                name="tierflow-checkpoint-%d" % step)
            self._saving = save
            save.thread.start()

    def wait_checkpoint(self):
        """Waits for the save_checkpoint in flight, if any; returns its
        marker's path (None when there was none) or raises its failure."""
        with self._save_lock:
            save, self._saving = self._saving, None
            if save is None:
                return None
            save.thread.join()
            if save.error is not None:
                raise TierflowError("checkpoint %d was not saved: %s" % (save.step, save.error))
            return save.marker

    def _write_checkpoint(self, save, files, text):
        try:
            folder = self.checkpoint_path(save.step)
            for name, buffer in files:
                path = os.path.join(folder, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(buffer)
            save.marker = self._commit(save.step, text)
        except Exception as e:  # raised in the caller's thread by the next call
            save.error = e
            print("tierflow_task: checkpoint %d was not saved: %s" % (save.step, e),
                  file=sys.stderr, flush=True)

    def latest_checkpoint(self):
        """(step, folder) of the highest committed checkpoint whose folder
        exists, or None."""
        directory = self.checkpoint_dir()
        best = None
        for entry in os.listdir(directory):
            m = _MARKER_NAME.match(entry)
            if not m:
                continue
            step = int(m.group(1))
            folder = os.path.join(directory, entry[:-len(".committed")])
            if "step-%08d" % step != os.path.basename(folder):
                continue
            if not _is_regular_file(os.path.join(directory, entry)) or not os.path.isdir(folder):
                continue
            if best is None or step > best[0]:
                best = (step, folder)
        return best

    # -- internals ----------------------------------------------------------

    def _lookup(self, prefix, name):
        if not isinstance(name, str) or not name:
            raise TierflowError("an input name must be a non-empty string, got %r" % (name,))
        key = prefix + name.upper()
        value = self._environ.get(key)
        if value is None:
            for k, v in self._environ.items():
                if k.upper() == key:
                    return v
        return value

    def _input(self, name):
        key = name.upper() if isinstance(name, str) else name
        with self._lock:
            entry = self._inputs.get(key)
        if entry is not None:
            return entry
        root = self.input_path(name)
        manifest = self._lookup("TIERFLOW_STREAM_", name) or None
        if manifest is not None and not os.path.lexists(manifest) and _is_regular_file(root):
            manifest = None  # a single file is copied whole: there is nothing to stream
        if manifest is not None:
            files = _read_manifest(manifest)
        else:
            files = _list_files(name, root)
        entry = _Input(root, manifest, files)
        with self._lock:
            return self._inputs.setdefault(key, entry)

    def _account(self, seconds, name, index):
        if seconds <= 0:
            return
        with self._lock:
            self._waited += seconds
        wait_file = self._environ.get("TIERFLOW_DATA_WAIT_FILE")
        if wait_file:
            line = ("%.6f %s %d\n" % (seconds, name, index)).encode()
            fd = os.open(wait_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)  # one write: concurrent appenders never interleave a line
            finally:
                os.close(fd)


class _Save:
    def __init__(self, step):
        self.step = step
        self.thread = None
        self.marker = None
        self.error = None


class _Input:
    def __init__(self, root, manifest, files):
        self.root = root
        self.manifest = manifest
        self.files = files
        # A single file given as the input: its one "shard" is the file itself.
        self.single_file = manifest is None and _is_regular_file(root)

    def path_of(self, i):
        if self.single_file:
            return self.root
        return os.path.join(self.root, self.files[i])


def _is_regular_file(path):
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _read_manifest(path):
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise TierflowError("stream manifest %s: %s" % (path, e.strerror or e))
    except ValueError as e:
        raise TierflowError("stream manifest %s: not valid JSON: %s" % (path, e))
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise TierflowError('stream manifest %s: expected {"files": ["rel/path", ...], '
                            '"bytes": [n, ...]}' % path)
    sizes = document.get("bytes")
    if sizes is not None and (not isinstance(sizes, list) or len(sizes) != len(files)):
        raise TierflowError("stream manifest %s: 'bytes' must list one size per file" % path)
    for f in files:
        parts = f.split("/")
        if not f or f.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise TierflowError("stream manifest %s: invalid relative path %r" % (path, f))
    return files


def _read_failure(manifest):
    """The copier's reason from <manifest>.failed, or None while it has not failed."""
    try:
        with open(manifest + ".failed", "rb") as f:
            return f.read().decode("utf-8", "replace").strip() or "no reason given"
    except FileNotFoundError:
        return None


def _list_files(name, root):
    try:
        st = os.stat(root)
    except OSError as e:
        raise TierflowError("input %s: %s: %s" % (name, root, e.strerror or e))
    if stat.S_ISREG(st.st_mode):
        return [os.path.basename(root)]
    if not stat.S_ISDIR(st.st_mode):
        raise TierflowError("input %s: %s is neither a file nor a folder" % (name, root))
    found = []

    def walk(directory, prefix):
        with os.scandir(directory) as entries:
            for e in entries:
                rel = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    walk(e.path, rel + "/")
                elif e.is_file(follow_symlinks=False):
                    found.append(rel)

    walk(root, "")
    # Byte order of the UTF-8 paths (the C++ helper sorts the same way).
    found.sort(key=lambda p: p.encode("utf-8", "surrogateescape"))
    return found


def _check_step(step):
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise TierflowError("a checkpoint step must be an int >= 0, got %r" % (step,))
    return step


def _marker_text(call, step, metadata):
    """The committed marker's JSON: {"step": step, **metadata}."""
    if "step" in metadata:
        raise TierflowError("%s: 'step' is set by the step argument, not a metadata key" % call)
    document = {"step": step}
    document.update(metadata)
    try:
        return json.dumps(document, sort_keys=False) + "\n"
    except (TypeError, ValueError) as e:
        raise TierflowError("%s: metadata is not JSON: %s" % (call, e))


def _checkpoint_buffers(files):
    """[(relative path, flat byte memoryview)] of save_checkpoint's `files`,
    checked: relative paths without '.' or '..' parts, none inside another."""
    items = files.items() if hasattr(files, "items") else files
    views = []
    names = set()
    for item in items:
        try:
            name, data = item
        except (TypeError, ValueError):
            raise TierflowError("save_checkpoint: files must map names to buffers, got %r" % (item,))
        parts = name.split("/") if isinstance(name, str) else None
        if not parts or any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise TierflowError(
                "save_checkpoint: %r is not a file name inside the checkpoint folder (a "
                "relative path like 'weights.bin' or 'optim/state.bin', no '.' or '..')" % (name,))
        if isinstance(data, str):
            raise TierflowError("save_checkpoint: %s is a str; pass bytes (encode it)" % name)
        try:
            view = memoryview(data).cast("B")
        except TypeError as e:
            raise TierflowError("save_checkpoint: %s is not a C-contiguous buffer (%s); pass "
                                "bytes, a bytearray or numpy.ascontiguousarray(...)" % (name, e))
        if name in names:
            raise TierflowError("save_checkpoint: %s is given twice" % name)
        names.add(name)
        views.append((name, view))
    for name in names:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise TierflowError("save_checkpoint: %s is a file, so %s cannot be inside it"
                                    % ("/".join(parts[:i]), name))
    if not views:
        raise TierflowError("save_checkpoint: no files to save")
    return views


def _write_atomic(path, text, sync=False):
    """Writes `text` to a temporary file beside `path`, then renames it."""
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, ".%s.tmp-%d-%d" % (base, os.getpid(), threading.get_ident()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(path):
    """fsync every regular file under `path`, then every folder, deepest first."""
    for directory, subdirs, files in os.walk(path, topdown=False):
        for f in files:
            p = os.path.join(directory, f)
            if not os.path.islink(p) and os.path.isfile(p):
                fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _sync_dir(directory)


def _remove_tree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


_default = None
_default_lock = threading.Lock()


def _task():
    global _default
    with _default_lock:
        if _default is None:
            _default = Task()
        return _default


def param(name):
    return _task().param(name)


def input_path(name):
    return _task().input_path(name)


def shards(name):
    return _task().shards(name)


def shard_count(name):
    return _task().shard_count(name)


def shard_path(name, i):
    return _task().shard_path(name, i)


def open_shard(name, i, mode="rb", **kwargs):
    return _task().open_shard(name, i, mode, **kwargs)


def waited_seconds():
    return _task().waited_seconds()


def checkpoint_dir():
    return _task().checkpoint_dir()


def checkpoint_path(step):
    return _task().checkpoint_path(step)


def commit_checkpoint(step, /, **metadata):
    return _task().commit_checkpoint(step, **metadata)


def latest_checkpoint():
    return _task().latest_checkpoint()


def save_checkpoint(step, files, /, **metadata):
    return _task().save_checkpoint(step, files, **metadata)


def wait_checkpoint():
    return _task().wait_checkpoint()
