#!/usr/bin/env python3
"""Tests of tierflow_task.py (CTest: sdk_python_task). Each test builds a Task
from its own environment over a temp folder; a thread plays the worker's
copier where a test needs files to appear while the task waits."""

import json
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tierflow_task as tf  # noqa: E402


def write(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def appear(path, data=b"x"):
    """Creates a file the way the copier does: a temporary name, then a rename."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    write(tmp, data)
    os.rename(tmp, path)


class Base(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tierflow-task-test.")
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


class Params(unittest.TestCase):
    def test_returns_the_value_the_stage_was_given(self):
        task = tf.Task({"TIERFLOW_PARAM_EPOCHS": "3", "TIERFLOW_WITHHELD_PARAMS": "lr"})
        self.assertEqual(task.param("epochs"), "3")
        self.assertEqual(task.param("EPOCHS"), "3")

    def test_a_withheld_param_says_how_to_declare_it(self):
        task = tf.Task({"TIERFLOW_STAGE": "train", "TIERFLOW_PARAM_LR": "0.1",
                        "TIERFLOW_WITHHELD_PARAMS": "seed,epochs"})
        with self.assertRaises(tf.TierflowError) as caught:
            task.param("epochs")
        self.assertEqual(str(caught.exception),
                         "param 'epochs' was not given to stage 'train': declare it with "
                         "`params: [epochs]` (or `params: all`) in the stage")

    def test_a_name_the_pipeline_does_not_have_is_not_a_param(self):
        task = tf.Task({"TIERFLOW_STAGE": "train", "TIERFLOW_PIPELINE": "digits",
                        "TIERFLOW_WITHHELD_PARAMS": "epochs"})
        with self.assertRaises(tf.TierflowError) as caught:
            task.param("epoch")
        self.assertEqual(str(caught.exception),
                         "param 'epoch' is not a param of pipeline 'digits' (declare it under "
                         "the pipeline's params:)")

    def test_outside_tierflow_names_the_variable(self):
        with self.assertRaises(tf.TierflowError) as caught:
            tf.Task({}).param("lr")
        self.assertIn("TIERFLOW_PARAM_LR is not set", str(caught.exception))


class StagedInputs(Base):
    def test_lists_regular_files_recursively_sorted_by_relative_path(self):
        root = self.path("in")
        for rel in ("b.bin", "a/z.bin", "a/b/c.bin", "B.bin", "a.bin"):
            write(os.path.join(root, rel))
        os.makedirs(os.path.join(root, "empty"))
        os.symlink(os.path.join(root, "a.bin"), os.path.join(root, "link.bin"))
        task = tf.Task({"TIERFLOW_INPUT_SHARDS": root})
        self.assertEqual(task.shards("shards"),
                         ["B.bin", "a.bin", "a/b/c.bin", "a/z.bin", "b.bin"])
        self.assertEqual(task.shard_count("shards"), 5)
        self.assertEqual(task.shard_path("shards", 2), os.path.join(root, "a/b/c.bin"))

    def test_name_is_case_insensitive(self):
        root = self.path("in")
        write(os.path.join(root, "f"))
        task = tf.Task({"TIERFLOW_INPUT_TRAIN_DATA": root})
        self.assertEqual(task.shards("train_data"), ["f"])
        self.assertEqual(task.shards("Train_Data"), ["f"])

    def test_open_shard_reads_the_file_without_waiting(self):
        root = self.path("in")
        write(os.path.join(root, "0.bin"), b"hello")
        wait_file = self.path("waits")
        task = tf.Task({"TIERFLOW_INPUT_X": root, "TIERFLOW_DATA_WAIT_FILE": wait_file})
        with task.open_shard("x", 0) as f:
            self.assertEqual(f.read(), b"hello")
        self.assertEqual(task.waited_seconds(), 0.0)
        self.assertFalse(os.path.exists(wait_file))

    def test_a_single_file_input_is_one_shard(self):
        write(self.path("model.bin"), b"m")
        task = tf.Task({"TIERFLOW_INPUT_MODEL": self.path("model.bin")})
        self.assertEqual(task.shards("model"), ["model.bin"])
        self.assertEqual(task.shard_path("model", 0), self.path("model.bin"))

    def test_index_out_of_range_raises(self):
        root = self.path("in")
        write(os.path.join(root, "f"))
        task = tf.Task({"TIERFLOW_INPUT_X": root})
        with self.assertRaisesRegex(IndexError, "has 1 files, no file 1"):
            task.shard_path("x", 1)

    def test_unknown_input_names_the_variable(self):
        with self.assertRaisesRegex(tf.TierflowError, "TIERFLOW_INPUT_NOPE is not set"):
            tf.Task({}).shards("nope")


class StreamedInputs(Base):
    def streamed(self, files, **extra):
        root = self.path("in")
        os.makedirs(root, exist_ok=True)
        manifest = self.path("stream", "shards.json")
        os.makedirs(os.path.dirname(manifest), exist_ok=True)
        with open(manifest, "w") as f:
            json.dump({"files": files, "bytes": [1] * len(files)}, f)
        env = {"TIERFLOW_INPUT_SHARDS": root, "TIERFLOW_STREAM_SHARDS": manifest}
        env.update(extra)
        return tf.Task(env), root, manifest

    def test_lists_the_manifest_in_copy_order(self):
        task, _, _ = self.streamed(["z/2.bin", "a/1.bin", "m.bin"])
        self.assertEqual(task.shards("SHARDS"), ["z/2.bin", "a/1.bin", "m.bin"])
        self.assertEqual(task.shard_count("shards"), 3)

    def test_waits_for_a_file_then_accounts_the_wait(self):
        wait_file = self.path("waits")
        task, root, manifest = self.streamed(["0.bin", "1.bin"],
                                             TIERFLOW_DATA_WAIT_FILE=wait_file)
        appear(os.path.join(root, "0.bin"), b"zero")
        with task.open_shard("shards", 0) as f:
            self.assertEqual(f.read(), b"zero")
        self.assertEqual(task.waited_seconds(), 0.0)

        seen = []

        def copier():
            # The reader announces 1 before it waits for it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with open(manifest + ".next") as f:
                        if f.read() == "1\n":
                            seen.append("1")
                            break
                except FileNotFoundError:
                    pass
                time.sleep(0.001)
            time.sleep(0.05)
            appear(os.path.join(root, "1.bin"), b"one")

        t = threading.Thread(target=copier)
        t.start()
        with task.open_shard("shards", 1) as f:
            self.assertEqual(f.read(), b"one")
        t.join()
        self.assertEqual(seen, ["1"])
        waited = task.waited_seconds()
        self.assertGreaterEqual(waited, 0.04)
        with open(wait_file) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1)
        seconds, name, index = lines[0].split(" ")
        self.assertAlmostEqual(float(seconds), waited, places=5)
        self.assertEqual((name, index), ("shards", "1"))

    def test_writes_next_atomically_on_each_open(self):
        task, root, manifest = self.streamed(["0.bin", "1.bin", "2.bin"])
        for name in ("0.bin", "1.bin", "2.bin"):
            appear(os.path.join(root, name))
        for i in (0, 2, 1):
            task.shard_path("shards", i)
            with open(manifest + ".next") as f:
                self.assertEqual(f.read(), "%d\n" % i)
        self.assertEqual(sorted(os.listdir(os.path.dirname(manifest))),
                         ["shards.json", "shards.json.next"])

    def test_appends_one_line_per_wait_from_several_threads(self):
        wait_file = self.path("waits")
        names = ["%d.bin" % i for i in range(8)]
        task, root, _ = self.streamed(names, TIERFLOW_DATA_WAIT_FILE=wait_file)
        readers = [threading.Thread(target=task.shard_path, args=("shards", i)) for i in range(8)]
        for r in readers:
            r.start()
        time.sleep(0.03)
        for name in names:
            appear(os.path.join(root, name))
        for r in readers:
            r.join()
        with open(wait_file) as f:
            lines = f.read().splitlines()
        self.assertEqual(sorted(int(line.split()[2]) for line in lines), list(range(8)))
        self.assertAlmostEqual(sum(float(line.split()[0]) for line in lines),
                               task.waited_seconds(), places=4)

    def test_a_failed_copy_ends_the_wait_with_its_reason(self):
        wait_file = self.path("waits")
        task, root, manifest = self.streamed(["0.bin", "1.bin"], TIERFLOW_DATA_WAIT_FILE=wait_file)

        def copier():
            time.sleep(0.03)
            # As the copier does: a temporary name, then a rename.
            with open(manifest + ".failed.tmp", "w") as f:
                f.write("tier bulk: connection refused\n")
            os.rename(manifest + ".failed.tmp", manifest + ".failed")

        t = threading.Thread(target=copier)
        t.start()
        with self.assertRaisesRegex(tf.TierflowError, r"input shards: file 1 \(1.bin\) will not "
                                    r"come: the copy failed: tier bulk: connection refused$"):
            task.shard_path("shards", 1)
        t.join()
        self.assertGreater(task.waited_seconds(), 0.0)
        with open(wait_file) as f:
            self.assertEqual(len(f.read().splitlines()), 1)

    def test_a_single_file_without_manifest_is_not_streamed(self):
        write(self.path("model.bin"), b"m")
        task = tf.Task({"TIERFLOW_INPUT_MODEL": self.path("model.bin"),
                        "TIERFLOW_STREAM_MODEL": self.path("model.bin.stream.json")})
        self.assertEqual(task.shards("model"), ["model.bin"])
        self.assertEqual(task.shard_path("model", 0), self.path("model.bin"))
        self.assertFalse(os.path.exists(self.path("model.bin.stream.json.next")))

    def test_bad_manifest_names_the_file(self):
        task, _, manifest = self.streamed([])
        with open(manifest, "w") as f:
            f.write('{"files": ["../escape"]}')
        with self.assertRaisesRegex(tf.TierflowError, "invalid relative path '../escape'"):
            task.shards("shards")
        with open(manifest, "w") as f:
            f.write('{"files": ["a"], "bytes": [1, 2]}')
        with self.assertRaisesRegex(tf.TierflowError, "one size per file"):
            tf.Task({"TIERFLOW_INPUT_S": self.dir, "TIERFLOW_STREAM_S": manifest}).shards("s")
        with open(manifest, "w") as f:
            f.write("{not json")
        with self.assertRaisesRegex(tf.TierflowError, "shards.json: not valid JSON"):
            tf.Task({"TIERFLOW_INPUT_S": self.dir, "TIERFLOW_STREAM_S": manifest}).shards("s")


class Checkpoints(Base):
    def task(self):
        return tf.Task({"TIERFLOW_CHECKPOINT_DIR": self.path("ckpt")})

    def test_path_is_created_and_named_by_step(self):
        path = self.task().checkpoint_path(7)
        self.assertEqual(path, self.path("ckpt", "step-00000007"))
        self.assertTrue(os.path.isdir(path))

    def test_commit_writes_the_marker_with_metadata(self):
        task = self.task()
        path = task.checkpoint_path(3)
        write(os.path.join(path, "weights.bin"), b"w")
        marker = task.commit_checkpoint(3, loss=0.25, epoch=3, note="ok")
        self.assertEqual(marker, path + ".committed")
        with open(marker) as f:
            self.assertEqual(json.load(f), {"step": 3, "loss": 0.25, "epoch": 3, "note": "ok"})
        self.assertEqual([e for e in os.listdir(self.path("ckpt")) if e.startswith(".")], [])

    def test_latest_is_the_highest_step_with_marker_and_folder(self):
        task = self.task()
        self.assertIsNone(task.latest_checkpoint())
        for step in (1, 2, 10):
            task.checkpoint_path(step)
            task.commit_checkpoint(step)
        task.checkpoint_path(11)  # not committed
        write(self.path("ckpt", "step-00000012.committed"), b'{"step": 12}')  # no folder
        write(self.path("ckpt", "step-0000009.committed"), b'{"step": 9}')  # not %08d
        self.assertEqual(task.latest_checkpoint(), (10, self.path("ckpt", "step-00000010")))

    def test_a_committed_checkpoint_is_never_written_again(self):
        task = self.task()
        task.checkpoint_path(1)
        task.commit_checkpoint(1)
        with self.assertRaisesRegex(tf.TierflowError, "already committed"):
            task.checkpoint_path(1)
        with self.assertRaisesRegex(tf.TierflowError, "already committed"):
            task.commit_checkpoint(1)

    def test_leftovers_of_an_earlier_attempt_are_cleared_once(self):
        stale = self.path("ckpt", "step-00000004", "half-written")
        write(stale)
        task = self.task()
        path = task.checkpoint_path(4)
        self.assertFalse(os.path.exists(stale))
        write(os.path.join(path, "mine"))
        self.assertEqual(task.checkpoint_path(4), path)
        self.assertTrue(os.path.exists(os.path.join(path, "mine")))

    def test_commit_without_folder_fails(self):
        with self.assertRaisesRegex(tf.TierflowError, "has no folder"):
            self.task().commit_checkpoint(5)

    def test_step_metadata_key_and_bad_steps_are_refused(self):
        task = self.task()
        task.checkpoint_path(1)
        with self.assertRaisesRegex(tf.TierflowError, "'step' is set by the step argument"):
            task.commit_checkpoint(1, step=2)
        for bad in (-1, 1.5, "3", True):
            with self.assertRaisesRegex(tf.TierflowError, "step must be an int >= 0"):
                task.checkpoint_path(bad)

    def test_without_checkpoint_dir_every_call_explains(self):
        task = tf.Task({})
        for call in (lambda: task.checkpoint_path(1), lambda: task.commit_checkpoint(1),
                     task.latest_checkpoint):
            with self.assertRaisesRegex(tf.TierflowError,
                                        "TIERFLOW_CHECKPOINT_DIR is not set: add `checkpoints"):
                call()


class GatedTask(tf.Task):
    """A Task whose background commit waits for `gate`: the test sees the
    state between save_checkpoint's return and the commit."""

    def __init__(self, environ):
        super().__init__(environ)
        self.gate = threading.Event()

    def _commit(self, step, text):
        if not self.gate.wait(30):  # hang detection only
            raise RuntimeError("gate never opened")
        return super()._commit(step, text)


class SavedCheckpoints(Base):
    def env(self):
        return {"TIERFLOW_CHECKPOINT_DIR": self.path("ckpt")}

    def read(self, *parts):
        with open(self.path("ckpt", *parts), "rb") as f:
            return f.read()

    def test_returns_with_a_snapshot_then_writes_and_commits_in_the_background(self):
        task = GatedTask(self.env())
        weights = bytearray(b"w" * 1000)
        import array
        moments = array.array("d", [0.5, 1.5, 2.5])
        task.save_checkpoint(7, {"weights.bin": weights, "optim/moments": moments}, loss=0.5)
        marker = self.path("ckpt", "step-00000007.committed")
        self.assertFalse(os.path.exists(marker), "committed before the call returned")
        weights[:] = b"x" * 1000  # the caller changes its buffers at once
        moments[0] = 9.0
        task.gate.set()
        self.assertEqual(task.wait_checkpoint(), marker)
        self.assertEqual(self.read("step-00000007", "weights.bin"), b"w" * 1000)
        self.assertEqual(self.read("step-00000007", "optim", "moments"),
                         array.array("d", [0.5, 1.5, 2.5]).tobytes())
        with open(marker) as f:
            self.assertEqual(json.load(f), {"step": 7, "loss": 0.5})
        self.assertEqual(task.latest_checkpoint(), (7, self.path("ckpt", "step-00000007")))
        self.assertIsNone(task.wait_checkpoint())

    def test_a_save_waits_for_the_one_in_flight(self):
        task = GatedTask(self.env())
        task.save_checkpoint(1, {"s": b"one"})
        second = threading.Thread(target=task.save_checkpoint, args=(2, {"s": b"two"}))
        second.start()
        second.join(0.3)
        self.assertTrue(second.is_alive(), "the second save did not wait for the first")
        self.assertEqual(os.listdir(self.path("ckpt")), ["step-00000001"])
        task.gate.set()
        second.join(30)
        self.assertFalse(second.is_alive())
        task.wait_checkpoint()
        self.assertEqual(self.read("step-00000001", "s"), b"one")
        self.assertEqual(self.read("step-00000002", "s"), b"two")
        self.assertEqual(task.latest_checkpoint()[0], 2)

    def test_a_background_failure_is_raised_once_by_the_next_call(self):
        write(self.path("not-a-folder"))

        class Broken(tf.Task):
            def checkpoint_path(self, step):
                return os.path.join(self.broken, "step")  # a file: writing under it fails

        task = Broken(self.env())
        task.broken = self.path("not-a-folder")
        task.save_checkpoint(3, {"s": b"x"})
        with self.assertRaisesRegex(tf.TierflowError, "checkpoint 3 was not saved: .*Not a directory"):
            task.wait_checkpoint()
        self.assertIsNone(task.wait_checkpoint())
        task.save_checkpoint(4, {"s": b"x"})
        with self.assertRaisesRegex(tf.TierflowError, "checkpoint 4 was not saved"):
            task.save_checkpoint(5, {"s": b"x"})
        self.assertFalse(os.path.exists(self.path("ckpt", "step-00000003.committed")))

    def test_bad_arguments_are_refused_before_anything_is_written(self):
        task = tf.Task(self.env())
        cases = [
            ({"../up": b"x"}, {}, "not a file name inside the checkpoint folder"),
            ({"/abs": b"x"}, {}, "not a file name inside"),
            ({"a/./b": b"x"}, {}, "not a file name inside"),
            ({"": b"x"}, {}, "not a file name inside"),
            ({3: b"x"}, {}, "not a file name inside"),
            ({"s": "text"}, {}, "is a str; pass bytes"),
            ({"s": memoryview(b"abcd")[::2]}, {}, "not a C-contiguous buffer"),
            ([("s", b"x"), ("s", b"y")], {}, "s is given twice"),
            ({"a": b"x", "a/b": b"y"}, {}, "a is a file, so a/b cannot be inside it"),
            ({}, {}, "no files to save"),
            (["s"], {}, "files must map names to buffers"),
            ({"s": b"x"}, {"step": 2}, "'step' is set by the step argument"),
            ({"s": b"x"}, {"bad": object()}, "metadata is not JSON"),
        ]
        for files, metadata, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(tf.TierflowError, message):
                    task.save_checkpoint(1, files, **metadata)
        with self.assertRaisesRegex(tf.TierflowError, "step must be an int >= 0"):
            task.save_checkpoint(-1, {"s": b"x"})
        self.assertEqual(os.listdir(self.path("ckpt")) if os.path.exists(self.path("ckpt")) else [],
                         [])
        self.assertIsNone(task.wait_checkpoint())

    def test_a_committed_step_is_refused(self):
        task = tf.Task(self.env())
        task.save_checkpoint(1, {"s": b"x"})
        task.wait_checkpoint()
        with self.assertRaisesRegex(tf.TierflowError, "checkpoint 1 is already committed"):
            task.save_checkpoint(1, {"s": b"y"})
        self.assertEqual(self.read("step-00000001", "s"), b"x")

    def test_a_process_that_exits_waits_for_its_save(self):
        import subprocess
        script = ("import tierflow_task as tf\n"
                  "tf.save_checkpoint(9, {'big.bin': b'z' * (32 << 20)}, done=True)\n")
        env = dict(os.environ, TIERFLOW_CHECKPOINT_DIR=self.path("ckpt"),
                   PYTHONPATH=os.path.dirname(os.path.abspath(tf.__file__)))
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        with open(self.path("ckpt", "step-00000009.committed")) as f:
            self.assertEqual(json.load(f), {"step": 9, "done": True})
        self.assertEqual(os.path.getsize(self.path("ckpt", "step-00000009", "big.bin")), 32 << 20)


class ModuleFunctions(Base):
    def test_module_functions_use_the_process_environment(self):
        root = self.path("in")
        write(os.path.join(root, "f"))
        saved = dict(os.environ)
        os.environ["TIERFLOW_INPUT_DATA"] = root
        os.environ["TIERFLOW_CHECKPOINT_DIR"] = self.path("ckpt")
        tf._default = None
        try:
            self.assertEqual(tf.shards("data"), ["f"])
            self.assertEqual(tf.shard_count("data"), 1)
            self.assertEqual(tf.shard_path("data", 0), os.path.join(root, "f"))
            tf.checkpoint_path(2)
            tf.commit_checkpoint(2, acc=1.0)
            self.assertEqual(tf.latest_checkpoint()[0], 2)
            tf.save_checkpoint(3, {"w": b"w"})
            self.assertEqual(tf.wait_checkpoint(), self.path("ckpt", "step-00000003.committed"))
            self.assertEqual(tf.waited_seconds(), 0.0)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            tf._default = None


if __name__ == "__main__":
    unittest.main()
