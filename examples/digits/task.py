"""Helpers shared by the digits task scripts (DESIGN.md "Task contract").

A task finds everything in its environment: inputs and outputs as paths in
TIERFLOW_INPUT_<NAME> / TIERFLOW_OUTPUT_<NAME>, params in
TIERFLOW_PARAM_<NAME>, the foreach item in TIERFLOW_ITEM. Streamed inputs,
data-wait accounting and checkpoints go through the repository's task
helper, sdk/python/tierflow_task.py (docs/task-helpers.md), imported here
as `tf`.
"""

import io
import os
import sys
import tempfile

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_here, os.pardir, os.pardir, "sdk", "python"))

import tierflow_task as tf  # noqa: E402,F401  (re-exported for the scripts)

_name = os.path.splitext(os.path.basename(sys.argv[0]))[0]


def fail(message):
    sys.stderr.write("%s: %s\n" % (_name, message))
    sys.exit(1)


def _env(variable):
    value = os.environ.get(variable)
    if value is None or value == "":
        fail("%s is not set: run this script as a tierflow task "
             "(tierflow run examples/digits/pipeline.yaml)" % variable)
    return value


def param(name, cast=str):
    # The SDK's param(): a param the stage was not given fails with how to
    # declare it (docs/pipeline-format.md "Params").
    try:
        text = tf.param(name)
    except tf.TierflowError as e:
        fail(str(e))
    variable = "TIERFLOW_PARAM_" + name.upper()
    try:
        return cast(text)
    except ValueError:
        fail("%s=%r is not a valid %s" % (variable, text, cast.__name__))


def item():
    return _env("TIERFLOW_ITEM")


def attempt():
    return int(os.environ.get("TIERFLOW_ATTEMPT", "1"))


def input_path(name):
    path = _env("TIERFLOW_INPUT_" + name.upper())
    if not os.path.exists(path):
        fail("input %s: %s does not exist" % (name, path))
    return path


def output_path(name):
    path = _env("TIERFLOW_OUTPUT_" + name.upper())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def write_atomic(path, data):
    """Writes a whole file or nothing: a crash never leaves half a file."""
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


def npz_bytes(**arrays):
    """The bytes of an uncompressed .npz holding `arrays`."""
    import numpy as np
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def log(message):
    print("[%s] %s" % (_name, message), flush=True)
