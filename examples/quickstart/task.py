"""The task contract of DESIGN.md ("Task contract"), for the quickstart scripts.

A task finds everything in its environment: inputs and outputs as paths in
TIERFLOW_INPUT_<NAME> / TIERFLOW_OUTPUT_<NAME>, params in
TIERFLOW_PARAM_<NAME>, the foreach item in TIERFLOW_ITEM and its checkpoint
directory in TIERFLOW_CHECKPOINT_DIR (names upper-cased). Standard library
only, so the scripts run on any python3.
"""

import json
import os
import sys
import tempfile
import time


def fail(message):
    sys.stderr.write("%s: %s\n" % (os.path.basename(sys.argv[0]), message))
    sys.exit(1)


def _env(variable):
    value = os.environ.get(variable)
    if value is None or value == "":
        fail("%s is not set: run this script as a tierflow task "
             "(or with examples/quickstart/run_by_hand.sh)" % variable)
    return value


def param(name, cast=str):
    variable = "TIERFLOW_PARAM_" + name.upper()
    if variable not in os.environ and "TIERFLOW_WITHHELD_PARAMS" in os.environ:
        # tierflow gives a stage only the params it references or declares
        # (docs/pipeline-format.md "Params"); the same message as the SDK's.
        fail("param '%s' was not given to stage '%s': declare it with `params: [%s]` "
             "(or `params: all`) in the stage" % (name, os.environ.get("TIERFLOW_STAGE", "?"), name))
    text = _env(variable)
    try:
        return cast(text)
    except ValueError:
        fail("%s=%r is not a valid %s" % (variable, text, cast.__name__))


def item():
    return _env("TIERFLOW_ITEM")


def input_path(name):
    path = _env("TIERFLOW_INPUT_" + name.upper())
    if not os.path.exists(path):
        fail("input %s: %s does not exist" % (name, path))
    return path


def stream_file(name, relative):
    """The path of file `relative` of input `name`, once it is there. A
    streamed input (`stream: true`, TIERFLOW_STREAM_<NAME> names its
    manifest: docs/task-helpers.md) may still be being copied: say how far
    the reader is (the manifest's .next file), then wait for the file."""
    path = os.path.join(input_path(name), relative)
    manifest = os.environ.get("TIERFLOW_STREAM_" + name.upper())
    if not manifest:
        return path
    with open(manifest) as f:
        files = json.load(f)["files"]
    if relative in files:
        write_atomic(manifest + ".next", "%d\n" % files.index(relative))
    delay = 0.001
    while not os.path.exists(path):
        if os.path.exists(manifest + ".failed"):
            with open(manifest + ".failed") as f:
                fail("input %s: its copy failed: %s" % (name, f.read().strip()))
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    return path


def input_files(name):
    """The files of an input, sorted by path. An input is a file or a
    directory tree; the input of a foreach stage's output (a gather) is a
    directory holding every item's output."""
    path = input_path(name)
    if os.path.isfile(path):
        return [path]
    found = []
    for directory, subdirs, files in os.walk(path):
        subdirs.sort()
        found.extend(os.path.join(directory, f) for f in sorted(files))
    if not found:
        fail("input %s: no files under %s" % (name, path))
    return found


def output_path(name):
    path = _env("TIERFLOW_OUTPUT_" + name.upper())
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return path


def checkpoint_dir():
    """TIERFLOW_CHECKPOINT_DIR, or None when the task runs without one."""
    path = os.environ.get("TIERFLOW_CHECKPOINT_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
    return path or None


def write_atomic(path, data):
    """Writes a whole file or nothing: a crash never leaves half an output."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def log(message):
    print("[%s] %s" % (os.path.splitext(os.path.basename(sys.argv[0]))[0], message), flush=True)
