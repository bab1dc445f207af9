// Tests of tierflow_task.h (the same behaviours as sdk/python/test_tierflow_task.py).
// Each test builds a Task from its own environment over a temp folder; a
// thread plays the worker's copier where files must appear while the task
// waits. Built as C++17 to keep the header honest about its standard.
#include "tierflow_task.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tierflow::task {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& data = "x") {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

// Creates a file the way the copier does: a temporary name, then a rename.
void Appear(const fs::path& path, const std::string& data = "x") {
  fs::path tmp = path.parent_path() / (".tmp-" + path.filename().string());
  Write(tmp, data);
  fs::rename(tmp, path);
}

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The message a task gets for a param its stage was not given.
std::string ParamError(const Task& task, const std::string& name) {
  try {
    task.Param(name);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TaskParamTest, ReturnsTheValueTheStageWasGiven) {
  Task task({{"TIERFLOW_PARAM_EPOCHS", "3"}, {"TIERFLOW_WITHHELD_PARAMS", "lr"}});
  EXPECT_EQ(task.Param("epochs"), "3");
  EXPECT_EQ(task.Param("EPOCHS"), "3");
}

TEST(TaskParamTest, AWithheldParamSaysHowToDeclareIt) {
  Task task({{"TIERFLOW_STAGE", "train"},
             {"TIERFLOW_PARAM_LR", "0.1"},
             {"TIERFLOW_WITHHELD_PARAMS", "seed,epochs"}});
  EXPECT_EQ(ParamError(task, "epochs"),
            "param 'epochs' was not given to stage 'train': declare it with `params: [epochs]` "
            "(or `params: all`) in the stage");
}

TEST(TaskParamTest, ANameThePipelineDoesNotHaveIsNotAParam) {
  Task task({{"TIERFLOW_STAGE", "train"},
             {"TIERFLOW_PIPELINE", "digits"},
             {"TIERFLOW_WITHHELD_PARAMS", "epochs"}});
  EXPECT_EQ(ParamError(task, "epoch"),
            "param 'epoch' is not a param of pipeline 'digits' (declare it under the pipeline's "
            "params:)");
  const Task outside_tierflow(std::map<std::string, std::string>{});
  EXPECT_NE(ParamError(outside_tierflow, "lr").find("TIERFLOW_PARAM_LR is not set"),
            std::string::npos);
}

class TaskHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tierflow-task-test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A streamed input "shards" whose manifest lists `files`.
  std::map<std::string, std::string> Streamed(const std::vector<std::string>& files) {
    fs::create_directories(dir_ / "in");
    fs::create_directories(dir_ / "stream");
    std::string json = "{\"files\": [";
    for (size_t i = 0; i < files.size(); ++i) json += (i ? ", \"" : "\"") + files[i] + "\"";
    json += "], \"bytes\": [";
    for (size_t i = 0; i < files.size(); ++i) json += i ? ", 1" : "1";
    json += "]}";
    Write(manifest(), json);
    return {{"TIERFLOW_INPUT_SHARDS", (dir_ / "in").string()},
            {"TIERFLOW_STREAM_SHARDS", manifest().string()}};
  }
  fs::path manifest() const { return dir_ / "stream" / "shards.json"; }

  fs::path dir_;
};

TEST_F(TaskHelperTest, ListsRegularFilesRecursivelySortedByRelativePath) {
  fs::path root = dir_ / "in";
  for (const char* rel : {"b.bin", "a/z.bin", "a/b/c.bin", "B.bin", "a.bin"}) Write(root / rel);
  fs::create_directories(root / "empty");
  fs::create_symlink(root / "a.bin", root / "link.bin");
  Task task({{"TIERFLOW_INPUT_SHARDS", root.string()}});
  EXPECT_EQ(task.Shards("shards"),
            (std::vector<std::string>{"B.bin", "a.bin", "a/b/c.bin", "a/z.bin", "b.bin"}));
  EXPECT_EQ(task.ShardCount("shards"), 5u);
  EXPECT_EQ(task.ShardPath("shards", 2), (root / "a/b/c.bin").string());
}

TEST_F(TaskHelperTest, NameIsCaseInsensitive) {
  Write(dir_ / "in" / "f");
  Task task({{"TIERFLOW_INPUT_TRAIN_DATA", (dir_ / "in").string()}});
  EXPECT_EQ(task.Shards("train_data"), std::vector<std::string>{"f"});
  EXPECT_EQ(task.Shards("Train_Data"), std::vector<std::string>{"f"});
}

TEST_F(TaskHelperTest, OpenShardReadsStagedFileWithoutWaiting) {
  Write(dir_ / "in" / "0.bin", "hello");
  Task task({{"TIERFLOW_INPUT_X", (dir_ / "in").string()},
             {"TIERFLOW_DATA_WAIT_FILE", (dir_ / "waits").string()}});
  std::ifstream in = task.OpenShard("x", 0);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "hello");
  EXPECT_EQ(task.WaitedSeconds(), 0.0);
  EXPECT_FALSE(fs::exists(dir_ / "waits"));
}

TEST_F(TaskHelperTest, SingleFileInputIsOneShard) {
  Write(dir_ / "model.bin");
  Task task({{"TIERFLOW_INPUT_MODEL", (dir_ / "model.bin").string()}});
  EXPECT_EQ(task.Shards("model"), std::vector<std::string>{"model.bin"});
  EXPECT_EQ(task.ShardPath("model", 0), (dir_ / "model.bin").string());
}

TEST_F(TaskHelperTest, IndexOutOfRangeThrows) {
  Write(dir_ / "in" / "f");
  Task task({{"TIERFLOW_INPUT_X", (dir_ / "in").string()}});
  EXPECT_THROW(task.ShardPath("x", 1), std::out_of_range);
}

TEST_F(TaskHelperTest, UnknownInputNamesTheVariable) {
  Task task(std::map<std::string, std::string>{});
  try {
    task.Shards("nope");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TIERFLOW_INPUT_NOPE is not set"), std::string::npos)
        << e.what();
  }
}

TEST_F(TaskHelperTest, StreamedInputListsTheManifestInCopyOrder) {
  Task task(Streamed({"z/2.bin", "a/1.bin", "m.bin"}));
  EXPECT_EQ(task.Shards("SHARDS"), (std::vector<std::string>{"z/2.bin", "a/1.bin", "m.bin"}));
}

TEST_F(TaskHelperTest, ManifestEscapesAndUnknownKeysAreRead) {
  fs::create_directories(dir_ / "in");
  Write(manifest(),
        R"( {"version": {"a": [1, true, null, "x\"]"]}, "files": ["caf\u00e9/\ud83d\ude00.bin",)"
        R"( "a\/b"], "bytes": [1e3, 2]} )");
  Task task(
      {{"TIERFLOW_INPUT_S", (dir_ / "in").string()}, {"TIERFLOW_STREAM_S", manifest().string()}});
  EXPECT_EQ(task.Shards("s"),
            (std::vector<std::string>{"caf\xc3\xa9/\xf0\x9f\x98\x80.bin", "a/b"}));
}

TEST_F(TaskHelperTest, WaitsForStreamedFileThenAccountsTheWait) {
  auto env = Streamed({"0.bin", "1.bin"});
  env["TIERFLOW_DATA_WAIT_FILE"] = (dir_ / "waits").string();
  Task task(env);
  Appear(dir_ / "in" / "0.bin", "zero");
  EXPECT_EQ(Read(task.ShardPath("shards", 0)), "zero");
  EXPECT_EQ(task.WaitedSeconds(), 0.0);

  std::atomic<bool> announced{false};
  std::thread copier([&] {
    // The reader announces 1 before it waits for it.
    for (int k = 0; k < 10000 && !announced; ++k) {
      if (Read(fs::path(manifest().string() + ".next")) == "1\n") announced = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Appear(dir_ / "in" / "1.bin", "one");
  });
  EXPECT_EQ(Read(task.ShardPath("shards", 1)), "one");
  copier.join();
  EXPECT_TRUE(announced);
  EXPECT_GE(task.WaitedSeconds(), 0.04);
  std::vector<std::string> lines = Lines(dir_ / "waits");
  ASSERT_EQ(lines.size(), 1u);
  std::istringstream line(lines[0]);
  double seconds = 0;
  std::string name, index;
  line >> seconds >> name >> index;
  EXPECT_NEAR(seconds, task.WaitedSeconds(), 1e-5);
  EXPECT_EQ(name, "shards");
  EXPECT_EQ(index, "1");
}

TEST_F(TaskHelperTest, WritesNextAtomicallyOnEachOpen) {
  Task task(Streamed({"0.bin", "1.bin", "2.bin"}));
  for (const char* f : {"0.bin", "1.bin", "2.bin"}) Appear(dir_ / "in" / f);
  for (size_t i : {0, 2, 1}) {
    task.ShardPath("shards", i);
    EXPECT_EQ(Read(fs::path(manifest().string() + ".next")), std::to_string(i) + "\n");
  }
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir_ / "stream")) {
    entries.push_back(e.path().filename().string());
  }
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"shards.json", "shards.json.next"}));
}

TEST_F(TaskHelperTest, AppendsOneLinePerWaitFromSeveralThreads) {
  std::vector<std::string> names;
  for (int i = 0; i < 8; ++i) names.push_back(std::to_string(i) + ".bin");
  auto env = Streamed(names);
  env["TIERFLOW_DATA_WAIT_FILE"] = (dir_ / "waits").string();
  Task task(env);
  std::vector<std::thread> readers;
  for (size_t i = 0; i < names.size(); ++i) {
    readers.emplace_back([&task, i] { task.ShardPath("shards", i); });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  for (const std::string& n : names) Appear(dir_ / "in" / n);
  for (std::thread& r : readers) r.join();
  std::vector<std::string> lines = Lines(dir_ / "waits");
  ASSERT_EQ(lines.size(), 8u);
  double total = 0;
  std::vector<int> indices;
  for (const std::string& l : lines) {
    std::istringstream in(l);
    double seconds;
    std::string name;
    int index;
    in >> seconds >> name >> index;
    total += seconds;
    indices.push_back(index);
  }
  std::sort(indices.begin(), indices.end());
  EXPECT_EQ(indices, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_NEAR(total, task.WaitedSeconds(), 1e-4);
}

TEST_F(TaskHelperTest, FailedCopyEndsTheWaitWithItsReason) {
  auto env = Streamed({"0.bin", "1.bin"});
  env["TIERFLOW_DATA_WAIT_FILE"] = (dir_ / "waits").string();
  Task task(env);
  std::thread copier([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    Appear(fs::path(manifest().string() + ".failed"), "tier bulk: connection refused\n");
  });
  try {
    task.ShardPath("shards", 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "input shards: file 1 (1.bin) will not come: the copy failed: tier bulk: "
              "connection refused");
  }
  copier.join();
  EXPECT_GT(task.WaitedSeconds(), 0.0);
  EXPECT_EQ(Lines(dir_ / "waits").size(), 1u);
}

TEST_F(TaskHelperTest, SingleFileWithoutManifestIsNotStreamed) {
  Write(dir_ / "model.bin", "m");
  Task task({{"TIERFLOW_INPUT_MODEL", (dir_ / "model.bin").string()},
             {"TIERFLOW_STREAM_MODEL", (dir_ / "model.bin.stream.json").string()}});
  EXPECT_EQ(task.Shards("model"), std::vector<std::string>{"model.bin"});
  EXPECT_EQ(task.ShardPath("model", 0), (dir_ / "model.bin").string());
  EXPECT_FALSE(fs::exists(dir_ / "model.bin.stream.json.next"));
}

TEST_F(TaskHelperTest, BadManifestNamesTheFile) {
  auto env = Streamed({});
  Write(manifest(), R"({"files": ["../escape"]})");
  try {
    Task(env).Shards("shards");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid relative path '../escape'"), std::string::npos)
        << e.what();
  }
  Write(manifest(), R"({"files": ["a"], "bytes": [1, 2]})");
  EXPECT_THROW(Task(env).Shards("shards"), Error);
  Write(manifest(), "{not json");
  try {
    Task(env).Shards("shards");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shards.json"), std::string::npos) << e.what();
  }
}

class CheckpointTest : public TaskHelperTest {
 protected:
  std::map<std::string, std::string> env() const {
    return {{"TIERFLOW_CHECKPOINT_DIR", (dir_ / "ckpt").string()}};
  }
};

TEST_F(CheckpointTest, PathIsCreatedAndNamedByStep) {
  Task task(env());
  std::string path = task.CheckpointPath(7);
  EXPECT_EQ(path, (dir_ / "ckpt" / "step-00000007").string());
  EXPECT_TRUE(fs::is_directory(path));
}

TEST_F(CheckpointTest, CommitWritesTheMarkerWithMetadata) {
  Task task(env());
  std::string path = task.CheckpointPath(3);
  Write(fs::path(path) / "weights.bin", "w");
  std::string marker =
      task.CommitCheckpoint(3, {{"loss", 0.25}, {"epoch", 3}, {"note", "a \"quoted\"\n"}});
  EXPECT_EQ(marker, path + ".committed");
  EXPECT_EQ(Read(marker),
            "{\"step\": 3, \"loss\": 0.25, \"epoch\": 3, \"note\": \"a \\\"quoted\\\"\\n\"}\n");
  for (const auto& e : fs::directory_iterator(dir_ / "ckpt")) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
}

TEST_F(CheckpointTest, LatestIsTheHighestStepWithMarkerAndFolder) {
  Task task(env());
  EXPECT_FALSE(task.LatestCheckpoint().has_value());
  for (int64_t step : {1, 2, 10}) {
    task.CheckpointPath(step);
    task.CommitCheckpoint(step);
  }
  task.CheckpointPath(11);                                              // not committed
  Write(dir_ / "ckpt" / "step-00000012.committed", R"({"step": 12})");  // no folder
  Write(dir_ / "ckpt" / "step-0000009.committed", R"({"step": 9})");    // not %08d
  std::optional<Checkpoint> latest = task.LatestCheckpoint();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 10);
  EXPECT_EQ(latest->path, (dir_ / "ckpt" / "step-00000010").string());
}

TEST_F(CheckpointTest, CommittedCheckpointIsNeverWrittenAgain) {
  Task task(env());
  task.CheckpointPath(1);
  task.CommitCheckpoint(1);
  EXPECT_THROW(task.CheckpointPath(1), Error);
  EXPECT_THROW(task.CommitCheckpoint(1), Error);
}

TEST_F(CheckpointTest, LeftoversOfAnEarlierAttemptAreClearedOnce) {
  fs::path stale = dir_ / "ckpt" / "step-00000004" / "half-written";
  Write(stale);
  Task task(env());
  std::string path = task.CheckpointPath(4);
  EXPECT_FALSE(fs::exists(stale));
  Write(fs::path(path) / "mine");
  EXPECT_EQ(task.CheckpointPath(4), path);
  EXPECT_TRUE(fs::exists(fs::path(path) / "mine"));
}

TEST_F(CheckpointTest, CommitWithoutFolderOrWithStepKeyOrNegativeStepFails) {
  Task task(env());
  EXPECT_THROW(task.CommitCheckpoint(5), Error);
  task.CheckpointPath(1);
  EXPECT_THROW(task.CommitCheckpoint(1, {{"step", 2}}), Error);
  EXPECT_THROW(task.CheckpointPath(-1), Error);
}

TEST_F(CheckpointTest, WithoutCheckpointDirEveryCallExplains) {
  Task task(std::map<std::string, std::string>{});
  for (auto call : std::vector<std::function<void()>>{[&] { task.CheckpointPath(1); },
                                                      [&] { task.CommitCheckpoint(1); },
                                                      [&] { task.LatestCheckpoint(); }}) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("TIERFLOW_CHECKPOINT_DIR is not set: add `checkpoints"),
                std::string::npos)
          << e.what();
    }
  }
}

// Expects `call` to throw Error whose message contains `part`.
void ExpectError(const std::function<void()>& call, const std::string& part) {
  try {
    call();
    ADD_FAILURE() << "no error, expected one with: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

class SaveCheckpointTest : public CheckpointTest {
 protected:
  // Makes step's file `name` a FIFO: the save's background write blocks on
  // it until ReadFifo opens it, so the test sees the moment between
  // SaveCheckpoint's return and the commit. The Task is asked for the
  // step's folder first, so it keeps what is in it.
  fs::path Fifo(Task& task, int64_t step, const std::string& name) {
    fs::path path = fs::path(task.CheckpointPath(step)) / name;
    EXPECT_EQ(mkfifo(path.c_str(), 0644), 0);
    return path;
  }
  static std::string ReadFifo(const fs::path& path) { return Read(path); }
  fs::path Marker(int64_t step) const {
    return dir_ / "ckpt" / ("step-0000000" + std::to_string(step) + ".committed");
  }
};

TEST_F(SaveCheckpointTest, ReturnsWithASnapshotThenWritesAndCommitsInTheBackground) {
  Task task(env());
  fs::path fifo = Fifo(task, 7, "weights.bin");
  std::vector<float> weights{0.5f, 1.5f, 2.5f};
  std::string optimizer = "adam state";
  task.SaveCheckpoint(7, {{"weights.bin", Bytes(weights)}, {"optim/state", optimizer}},
                      {{"loss", 0.5}});
  EXPECT_FALSE(fs::exists(Marker(7))) << "committed before the background write ended";
  weights[0] = 9.0f;  // the caller changes its buffers at once
  optimizer = "changed!!!";
  std::string written = ReadFifo(fifo);
  std::vector<float> expected{0.5f, 1.5f, 2.5f};
  EXPECT_EQ(written, std::string(Bytes(expected)));
  EXPECT_EQ(task.WaitCheckpoint(), Marker(7).string());
  EXPECT_EQ(Read(dir_ / "ckpt" / "step-00000007" / "optim" / "state"), "adam state");
  EXPECT_EQ(Read(Marker(7)), "{\"step\": 7, \"loss\": 0.5}\n");
  EXPECT_EQ(task.LatestCheckpoint()->step, 7);
  EXPECT_EQ(task.WaitCheckpoint(), std::nullopt);
}

TEST_F(SaveCheckpointTest, ASaveWaitsForTheOneInFlight) {
  Task task(env());
  fs::path fifo = Fifo(task, 1, "s");
  task.SaveCheckpoint(1, {{"s", "one"}});
  std::atomic<bool> returned{false};
  std::thread second([&] {
    task.SaveCheckpoint(2, {{"s", "two"}});
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(returned) << "the second save did not wait for the first";
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-00000002"));
  EXPECT_EQ(ReadFifo(fifo), "one");
  second.join();
  EXPECT_TRUE(returned);
  EXPECT_EQ(task.WaitCheckpoint(), Marker(2).string());
  EXPECT_TRUE(fs::exists(Marker(1)));
  EXPECT_EQ(Read(dir_ / "ckpt" / "step-00000002" / "s"), "two");
}

TEST_F(SaveCheckpointTest, ABackgroundFailureIsThrownOnceByTheNextCall) {
  Task task(env());
  std::string long_name(300, 'a');  // longer than a file name may be: open() fails
  task.SaveCheckpoint(3, {{long_name, "x"}});
  ExpectError([&] { task.WaitCheckpoint(); }, "checkpoint 3 was not saved: cannot create");
  EXPECT_EQ(task.WaitCheckpoint(), std::nullopt);
  task.SaveCheckpoint(4, {{long_name, "x"}});
  ExpectError([&] { task.SaveCheckpoint(5, {{"s", "x"}}); }, "checkpoint 4 was not saved");
  EXPECT_FALSE(fs::exists(Marker(3)));
  EXPECT_FALSE(fs::exists(Marker(5)));
}

TEST_F(SaveCheckpointTest, BadArgumentsAreRefusedBeforeAnythingIsWritten) {
  Task task(env());
  std::vector<std::pair<CheckpointFiles, std::string>> cases = {
      {{{"../up", "x"}}, "not a file name inside the checkpoint folder"},
      {{{"/abs", "x"}}, "not a file name inside"},
      {{{"a/./b", "x"}}, "not a file name inside"},
      {{{"a//b", "x"}}, "not a file name inside"},
      {{{"", "x"}}, "not a file name inside"},
      {{{"s", "x"}, {"s", "y"}}, "s is given twice"},
      {{{"a", "x"}, {"a/b", "y"}}, "a is a file, so a/b cannot be inside it"},
      {{}, "no files to save"},
  };
  for (const auto& [files, message] : cases) {
    ExpectError([&, &files = files] { task.SaveCheckpoint(1, files); }, message);
  }
  ExpectError(
      [&] {
        task.SaveCheckpoint(1, {{"s", "x"}}, {{"step", 2}});
      },
      "'step' is set by the step argument");
  ExpectError([&] { task.SaveCheckpoint(-1, {{"s", "x"}}); }, "step must be >= 0");
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "step-00000001"));
  EXPECT_EQ(task.WaitCheckpoint(), std::nullopt);
}

TEST_F(SaveCheckpointTest, ACommittedStepIsRefused) {
  Task task(env());
  task.SaveCheckpoint(1, {{"s", "x"}});
  task.WaitCheckpoint();
  ExpectError([&] { task.SaveCheckpoint(1, {{"s", "y"}}); }, "checkpoint 1 is already committed");
  EXPECT_EQ(Read(dir_ / "ckpt" / "step-00000001" / "s"), "x");
}

TEST_F(SaveCheckpointTest, ADestroyedTaskHasFinishedItsSave) {
  std::string big(32 << 20, 'z');
  {
    Task task(env());
    task.SaveCheckpoint(9, {{"big.bin", big}}, {{"done", true}});
  }
  EXPECT_EQ(Read(Marker(9)), "{\"step\": 9, \"done\": true}\n");
  EXPECT_EQ(fs::file_size(dir_ / "ckpt" / "step-00000009" / "big.bin"), big.size());
}

TEST_F(TaskHelperTest, FreeFunctionsUseTheProcessEnvironment) {
  Write(dir_ / "in" / "f");
  ASSERT_EQ(setenv("TIERFLOW_INPUT_DATA", (dir_ / "in").string().c_str(), 1), 0);
  ASSERT_EQ(setenv("TIERFLOW_CHECKPOINT_DIR", (dir_ / "ckpt").string().c_str(), 1), 0);
  EXPECT_EQ(Shards("data"), std::vector<std::string>{"f"});
  EXPECT_EQ(ShardCount("data"), 1u);
  EXPECT_EQ(ShardPath("data", 0), (dir_ / "in" / "f").string());
  CheckpointPath(2);
  CommitCheckpoint(2, {{"acc", 1.0}});
  EXPECT_EQ(LatestCheckpoint()->step, 2);
  SaveCheckpoint(3, {{"w", "w"}});
  EXPECT_EQ(WaitCheckpoint(), (dir_ / "ckpt" / "step-00000003.committed").string());
  EXPECT_EQ(WaitedSeconds(), 0.0);
}

}  // namespace
}  // namespace tierflow::task
