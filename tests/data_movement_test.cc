// Data movement in the engine (docs/tiers.md "Where data moves"): outputs
// written on their write tier and written back to their home, inputs copied
// to each consumer's working tier before it starts, working copies evicted
// when their last reader ends, every copy recorded in the store; a home
// that cannot be reached fails the run without losing the output. Real
// tasks on real posix tiers in a temporary folder; the unreachable home is
// an s3 tier whose endpoint is a closed loopback port.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "api/embedded.h"
#include "api/run_service.h"
#include "scheduler/engine.h"
#include "tests/engine/engine_testing.h"

namespace tierflow {
namespace {

using scheduler::EngineOptions;
using scheduler::PlacementTier;
using scheduler::RunResult;
using scheduler::RunState;
using ::testing::HasSubstr;
using namespace tierflow::testing;  // NOLINT: the test helpers

// ingest writes raw (home: bulk, the only durable tier; written on disk,
// which writes it 6x faster); train reads it at random for many passes
// (worth a copy to ram) and writes a model; report reads raw once,
// sequentially (read where it was written, on disk).
constexpr std::string_view kPipeline = R"(name: moves
stages:
  ingest:
    kind: ingest
    run: 'printf "raw bytes" > "$TIERFLOW_OUTPUT_RAW"'
    outputs: {raw: 100MiB}
  train:
    kind: train
    inputs: {data: ingest.raw}
    run: 'cat "$TIERFLOW_INPUT_DATA" > "$TIERFLOW_OUTPUT_MODEL"; echo "$TIERFLOW_INPUT_DATA"'
    outputs: {model: {size: 1MiB, durability: node}}
  report:
    inputs: {data: ingest.raw}
    io: {read: sequential, read_passes: 1}
    run: 'echo "$TIERFLOW_INPUT_DATA"; wc -c < "$TIERFLOW_INPUT_DATA" > "$TIERFLOW_OUTPUT_SIZE"'
    outputs: [size]
)";

class DataMovementTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteFile(dir_ / "pipeline.yaml", std::string(kPipeline)); }

  std::string Db() const { return (dir_.path() / ".tierflow" / "tierflow.db").string(); }
  fs::path Root(const std::string& tier) const { return dir_.path() / "tiers" / tier; }

  std::vector<PlacementTier> Tiers() const { return RamDiskBulkTiers(dir_.path() / "tiers"); }

  absl::StatusOr<RunResult> RunOn(std::vector<PlacementTier> tiers) {
    EngineOptions options;
    options.db_path = Db();
    options.slots = 2;
    options.tiers = std::move(tiers);
    std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(std::move(options));
    scheduler::RunRequest request;
    request.file = dir_ / "pipeline.yaml";
    auto result = std::async(std::launch::async, [&] { return engine->Run(request); });
    if (result.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      engine->Cancel();
      ADD_FAILURE() << "the run hangs";
    }
    return result.get();
  }

  // Copies of `task`.`output` as "tier role state source", in row order.
  std::vector<std::string> Copies(const std::string& task, const std::string& output) const {
    std::vector<std::string> copies;
    for (const Row& row :
         Query(Db(),
               "SELECT c.tier || ' ' || c.role || ' ' || c.state || ' ' || "
               "coalesce(c.source_tier, '-') FROM artifact_copies c JOIN artifacts a ON "
               "a.id = c.artifact_id WHERE a.task_id = '" +
                   task + "' AND a.name = '" + output + "' ORDER BY c.id")) {
      copies.push_back(row[0]);
    }
    return copies;
  }
  std::string Log(const std::string& run_id, const std::string& task) const {
    return ReadFile(dir_.path() / ".tierflow" / "runs" / run_id / "logs" /
                    (task + ".attempt-1.log"));
  }

  TempDir dir_;
};

TEST_F(DataMovementTest, WritesBackPrefetchesAndEvictsRecordingEveryCopy) {
  absl::StatusOr<RunResult> result = RunOn(Tiers());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded) << result->failures.size();
  const std::string key = "runs/" + result->run_id + "/artifacts/ingest/raw";

  // raw: written on disk, written back to its home (bulk), copied to ram
  // for train; both working copies evicted once their readers ended.
  EXPECT_THAT(Copies("ingest", "raw"),
              ::testing::UnorderedElementsAre("disk working evicted -", "bulk home present disk",
                                              "ram working evicted disk"));
  EXPECT_EQ(ReadFile(Root("bulk") / key), "raw bytes");
  EXPECT_FALSE(fs::exists(Root("disk") / key));
  EXPECT_FALSE(fs::exists(Root("ram") / key));

  // Each consumer read it where placement put it, whole.
  EXPECT_EQ(Log(result->run_id, "train"), (Root("ram") / key).string() + "\n");
  EXPECT_EQ(Log(result->run_id, "report"), (Root("disk") / key).string() + "\n");
  EXPECT_EQ(ReadFile(Root("disk") / "runs" / result->run_id / "artifacts/train/model"),
            "raw bytes");

  // The model needs node durability: disk is its home, written in place,
  // never copied; nobody reads it, nothing to evict.
  EXPECT_THAT(Copies("train", "model"), ::testing::ElementsAre("disk home present -"));
  // Every copy that was made names its bytes and time; events record it.
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM events WHERE kind = 'copied'"), "2");
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM artifact_copies WHERE state = 'copying'"), "0");
  // Staging is gone from every tier.
  for (const char* tier : {"ram", "disk", "bulk"}) {
    EXPECT_FALSE(fs::exists(Root(tier) / "runs" / result->run_id / "staging")) << tier;
  }
  // The run keeps its tiers, for a resume.
  EXPECT_THAT(QueryValue(Db(), "SELECT tiers_json FROM runs"), HasSubstr("\"name\":\"bulk\""));
}

TEST_F(DataMovementTest, AHomeInRamGoesWhenItsLastReaderEnds) {
  // stage outputs need only volatile: their home is ram, scratch space
  // that is freed once every reader has ended. An output nobody reads stays.
  WriteFile(dir_ / "pipeline.yaml", R"(name: scratch
stages:
  pack:
    kind: stage
    run: 'printf shards > "$TIERFLOW_OUTPUT_SHARDS"; printf kept > "$TIERFLOW_OUTPUT_INDEX"'
    outputs: {shards: 1MiB, index: 1KiB}
  fit:
    inputs: {shards: pack.shards}
    run: 'cat "$TIERFLOW_INPUT_SHARDS" > "$TIERFLOW_OUTPUT_MODEL"'
    outputs: [model]
)");
  absl::StatusOr<RunResult> result = RunOn(Tiers());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  EXPECT_THAT(Copies("pack", "shards"), ::testing::ElementsAre("ram home released -"));
  EXPECT_THAT(Copies("pack", "index"), ::testing::ElementsAre("ram home present -"));
  // The release is a decision recorded with its reason.
  EXPECT_EQ(QueryValue(Db(), "SELECT message FROM events WHERE kind = 'released'"),
            "pack.shards on tier ram: volatile: released after its last reader ended; "
            "recomputed when needed again (1 reader)");
  const fs::path artifacts = Root("ram") / "runs" / result->run_id / "artifacts" / "pack";
  EXPECT_FALSE(fs::exists(artifacts / "shards"));
  EXPECT_EQ(ReadFile(artifacts / "index"), "kept");
  EXPECT_EQ(ReadFile(Root("disk") / "runs" / result->run_id / "artifacts/fit/model"), "shards");
}

TEST_F(DataMovementTest, NothingFitsFailsBeforeAnythingIsRecorded) {
  std::vector<PlacementTier> tiers = Tiers();
  tiers.pop_back();  // no durable tier for ingest.raw
  absl::StatusOr<RunResult> result = RunOn(tiers);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("ingest.raw needs a durable home for 100 MiB and no tier fits"));
  EXPECT_TRUE(!fs::exists(Db()) || QueryValue(Db(), "SELECT count(*) FROM runs") == "0");
}

// A loopback port nobody listens on.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(fd, reinterpret_cast<sockaddr*>(&address), length);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// An s3 home that cannot be reached is found before anything runs (every
// task would run, then every write-back fail): the run does not start.
TEST_F(DataMovementTest, AnUnreachableHomeIsRefusedBeforeAnythingRuns) {
  setenv("TIERFLOW_TEST_S3_KEY", "test", 1);
  setenv("TIERFLOW_TEST_S3_SECRET", "secret", 1);
  std::vector<PlacementTier> tiers = Tiers();
  storage::TierConfig& bulk = tiers.back().config;
  bulk.adapter = "s3";
  bulk.root.clear();
  bulk.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  bulk.bucket = "nowhere";
  bulk.access_key_env = "TIERFLOW_TEST_S3_KEY";
  bulk.secret_key_env = "TIERFLOW_TEST_S3_SECRET";
  bulk.s3_timing.budget = std::chrono::milliseconds(200);
  absl::StatusOr<RunResult> result = RunOn(tiers);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_THAT(result.status().message(),
              HasSubstr("tier bulk (bucket 'nowhere' at " + bulk.endpoint));
  EXPECT_THAT(result.status().message(), HasSubstr("nothing was started"));
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM runs"), "0");
  EXPECT_FALSE(fs::exists(Root("disk") / "runs"));
}

// Checkpoints (docs/task-helpers.md): the task writes them under
// TIERFLOW_CHECKPOINT_DIR, on the fastest tier (ram), and commits each with
// a marker; each is flushed to the durable tier (bulk) while it runs, only
// the newest `keep` stay, and a retry whose checkpoints were lost with its
// node (the attempt wipes them here) starts from the latest one flushed.
TEST_F(DataMovementTest, CheckpointsAreFlushedKeptAndRestoredForARetry) {
  WriteFile(dir_ / "pipeline.yaml", R"x(name: ckpt
stages:
  train:
    kind: train
    checkpoints: {keep: 2}
    retries: {limit: 1, backoff: 10ms}
    run: |
      dir="$TIERFLOW_CHECKPOINT_DIR"
      start=$(ls "$dir" | sed -n 's/^step-\([0-9]*\)\.committed$/\1/p' | sort -n | tail -1)
      start=${start:-0}
      echo "attempt $TIERFLOW_ATTEMPT starts after step $start in $dir"
      step=$((start + 1))
      while [ $step -le 4 ]; do
        mkdir -p "$dir/step-$step"
        head -c 1000 /dev/zero > "$dir/step-$step/weights"
        echo "{\"step\": $step}" > "$dir/step-$step.tmp" && mv "$dir/step-$step.tmp" "$dir/step-$step.committed"
        if [ "$TIERFLOW_ATTEMPT" = 1 ] && [ $step = 2 ]; then
          sleep 1                 # flushed meanwhile (the engine looks every 200 ms)
          rm -rf "$dir"/*         # the node is lost with its RAM
          exit 3
        fi
        step=$((step + 1))
      done
      echo done > "$TIERFLOW_OUTPUT_MODEL"
    outputs: [model]
)x");
  absl::StatusOr<RunResult> result = RunOn(Tiers());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  const std::string run = result->run_id;
  const fs::path ram = Root("ram") / "runs" / run / "checkpoints" / "train";
  EXPECT_THAT(ReadFile(dir_.path() / ".tierflow" / "runs" / run / "logs" / "train.attempt-1.log"),
              HasSubstr("attempt 1 starts after step 0 in " + ram.string()));
  EXPECT_THAT(ReadFile(dir_.path() / ".tierflow" / "runs" / run / "logs" / "train.attempt-2.log"),
              HasSubstr("attempt 2 starts after step 2"));
  std::vector<std::string> rows;
  for (const Row& row : Query(Db(),
                              "SELECT c.name || ' ' || c.step || ' ' || c.tier || ' ' || "
                              "c.state || ' ' || a.number || ' ' || c.bytes FROM checkpoints "
                              "c JOIN attempts a ON a.id = c.attempt_id ORDER BY c.step")) {
    rows.push_back(row[0]);
  }
  EXPECT_EQ(rows, (std::vector<std::string>{
                      "step-1 1 bulk deleted 1 1000", "step-2 2 bulk deleted 1 1000",
                      "step-3 3 bulk present 2 1000", "step-4 4 bulk present 2 1000"}));
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM events WHERE kind = 'checkpoint_restore'"), "1");
  // The restore's time counts as the retry's wait for data.
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM events WHERE kind = 'checkpoint_restored'"),
            "1");
  EXPECT_EQ(QueryValue(Db(), "SELECT input_wait_ms IS NOT NULL FROM attempts WHERE number = 2"),
            "1");
  // On bulk: the newest two, each with its marker, nothing else.
  std::vector<std::string> kept;
  const fs::path bulk = Root("bulk") / "runs" / run / "checkpoints" / "train";
  for (const auto& entry : fs::recursive_directory_iterator(bulk)) {
    kept.push_back(fs::relative(entry.path(), bulk).string());
  }
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<std::string>{"step-3", "step-3.committed", "step-3/weights",
                                            "step-4", "step-4.committed", "step-4/weights"}));
}

// A streamed input (`stream: true`): the reader starts once the manifest of
// its copy is on its working tier (the first files may still be coming),
// finds them through the manifest
// TIERFLOW_STREAM_<NAME> names, and the copy stays at most 8 files ahead of
// what it has opened (the helpers' ".next" file, written here by hand).
TEST_F(DataMovementTest, AStreamedInputStartsItsReaderBeforeItsCopyEnds) {
  WriteFile(dir_ / "pipeline.yaml", R"x(name: stream
stages:
  pack:
    kind: stage
    run: 'mkdir -p "$TIERFLOW_OUTPUT_SHARDS" && for i in $(seq 10 39); do echo "shard $i" > "$TIERFLOW_OUTPUT_SHARDS/s$i"; done'
    outputs: {shards: {size: 100MiB, durability: durable}}
  train:
    kind: train
    inputs: {shards: {from: pack.shards, stream: true}}
    run: |
      manifest="$TIERFLOW_STREAM_SHARDS"
      [ -n "$manifest" ] || { echo "no manifest"; exit 4; }
      echo "present at start: $(ls "$TIERFLOW_INPUT_SHARDS" | wc -l)"
      i=0
      for f in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["files"]))' "$manifest"); do
        echo $i > "$manifest.tmp" && mv "$manifest.tmp" "$manifest.next"
        while [ ! -e "$TIERFLOW_INPUT_SHARDS/$f" ]; do sleep 0.01; done
        cat "$TIERFLOW_INPUT_SHARDS/$f" >> "$TIERFLOW_OUTPUT_SEEN"
        i=$((i + 1))
      done
    outputs: [seen]
)x");
  absl::StatusOr<RunResult> result = RunOn(Tiers());
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string log = ReadFile(dir_.path() / ".tierflow" / "runs" / result->run_id / "logs" /
                                   "train.attempt-1.log");
  ASSERT_EQ(result->state, RunState::kSucceeded) << log;
  const size_t at = log.find("present at start: ");
  ASSERT_NE(at, std::string::npos) << log;
  const int present = std::stoi(log.substr(at + 18));
  EXPECT_LE(present, 8) << "the copy ran more than its window ahead: " << log;
  std::string expected;
  for (int i = 10; i < 40; ++i) expected += "shard " + std::to_string(i) + "\n";
  EXPECT_EQ(ReadFile(dir_.path() / "tiers" / "bulk" / "runs" / result->run_id / "artifacts" /
                     "train" / "seen"),
            expected);
  // The working copy on ram was complete, then evicted with its manifest.
  EXPECT_THAT(Copies("pack", "shards"), ::testing::Contains("ram working evicted disk"));
  EXPECT_FALSE(fs::exists(Root("ram") / "runs" / result->run_id / "artifacts" / "pack" /
                          "shards.stream.json"));
}

// A crash in the middle of a checkpoint's flush (simulated: the row put
// back to `flushing` and the durable copy removed, as a kill -9 leaves
// them) does not lose it: resume records the cut flush failed and flushes
// the checkpoint again from where the task wrote it.
TEST_F(DataMovementTest, ResumeFlushesACheckpointWhoseFlushACrashCutOff) {
  WriteFile(dir_ / "pipeline.yaml", R"x(name: cut
stages:
  train:
    kind: train
    checkpoints: {keep: 3}
    run: |
      dir="$TIERFLOW_CHECKPOINT_DIR"
      if [ -e "$dir/step-1.committed" ]; then echo resumed > "$TIERFLOW_OUTPUT_MODEL"; exit 0; fi
      mkdir -p "$dir/step-1" && head -c 5000 /dev/zero > "$dir/step-1/weights"
      echo '{"step": 1}' > "$dir/step-1.committed"
      exit 3
    outputs: [model]
)x");
  absl::StatusOr<RunResult> first = RunOn(Tiers());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);
  ASSERT_EQ(QueryValue(Db(), "SELECT state FROM checkpoints"), "present");
  const fs::path durable = Root("bulk") / "runs" / first->run_id / "checkpoints" / "train";
  fs::remove_all(durable);
  {
    absl::StatusOr<std::unique_ptr<scheduler::Database>> db = scheduler::OpenStore(Db());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute("UPDATE checkpoints SET state = 'flushing'").ok());
  }
  EngineOptions options;
  options.db_path = Db();
  std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(std::move(options));
  absl::StatusOr<RunResult> resumed = engine->Resume(first->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->state, RunState::kSucceeded);
  std::vector<std::string> rows;
  for (const Row& row : Query(Db(),
                              "SELECT name || ' ' || state || ' ' || message FROM "
                              "checkpoints ORDER BY id")) {
    rows.push_back(row[0]);
  }
  EXPECT_EQ(rows, (std::vector<std::string>{"step-1 failed the engine stopped during this flush",
                                            "step-1 present "}));
  EXPECT_EQ(ReadFile(durable / "step-1" / "weights").size(), 5000u);
  EXPECT_TRUE(fs::exists(durable / "step-1.committed"));
}

// A volatile home released after its last reader, in a run that failed:
// the resume reruns the reader, which needs it, so its producer runs again
// first. Lineage shows the released copy as released, not as a home.
constexpr std::string_view kScratchPipeline = R"(name: scratch
stages:
  pack:
    kind: stage
    run: 'echo packed >> "$PACKS"; printf shards > "$TIERFLOW_OUTPUT_SHARDS"'
    env: {PACKS: "PACKS_FILE"}
    outputs: {shards: 1MiB}
  fit:
    inputs: {shards: pack.shards}
    run: 'test -e "$GO" || exit 3; cat "$TIERFLOW_INPUT_SHARDS" > "$TIERFLOW_OUTPUT_MODEL"'
    env: {GO: "GO_FILE"}
    outputs: [model]
  other:
    run: 'test -e "$GO_OTHER" || exit 4; printf done > "$TIERFLOW_OUTPUT_OUT"'
    env: {GO_OTHER: "GO_OTHER_FILE"}
    outputs: [out]
)";

class VolatileHomeTest : public DataMovementTest {
 protected:
  void SetUp() override {
    std::string text(kScratchPipeline);
    for (auto [from, to] : {std::pair<std::string, fs::path>{"PACKS_FILE", dir_ / "packs"},
                            {"GO_OTHER_FILE", dir_ / "go-other"},
                            {"GO_FILE", dir_ / "go"}}) {
      text.replace(text.find(from), from.size(), to.string());
    }
    WriteFile(dir_ / "pipeline.yaml", text);
  }

  absl::StatusOr<RunResult> ResumeOn(const std::string& run_id) {
    EngineOptions options;
    options.db_path = Db();
    options.slots = 2;
    std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(std::move(options));
    auto result = std::async(std::launch::async, [&] { return engine->Resume(run_id); });
    if (result.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      engine->Cancel();
      ADD_FAILURE() << "the resume hangs";
    }
    return result.get();
  }

  std::string Lineage(const std::string& target) const {
    std::ostringstream out;
    absl::Status status = api::WriteLineage(Db(), target, false, false, std::nullopt, "text", out);
    EXPECT_TRUE(status.ok()) << status;
    return out.str();
  }
  std::string LineageJson(const std::string& target) const {
    std::ostringstream out;
    absl::Status status = api::WriteLineage(Db(), target, false, false, std::nullopt, "json", out);
    EXPECT_TRUE(status.ok()) << status;
    return out.str();
  }
  size_t Packs() const { return ReadLines(dir_ / "packs").size(); }
};

TEST_F(VolatileHomeTest, AResumeThatNeedsAReleasedHomeRunsItsProducerAgain) {
  WriteFile(dir_ / "go-other", "");
  absl::StatusOr<RunResult> first = RunOn(Tiers());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);  // fit exits 3
  EXPECT_EQ(Packs(), 1u);
  // fit failed for good: its input's home was released, and lineage says so.
  EXPECT_THAT(Copies("pack", "shards"), ::testing::ElementsAre("ram home released -"));
  const std::string ref = first->run_id + "/pack/shards";
  EXPECT_THAT(Lineage(ref), HasSubstr("(released, recomputed when needed)"));
  EXPECT_THAT(Lineage(ref), ::testing::Not(HasSubstr("(evicted)")));
  EXPECT_THAT(LineageJson(ref), HasSubstr("\"state\": \"released\""));
  EXPECT_THAT(LineageJson(ref), HasSubstr("recomputed when needed again"));

  WriteFile(dir_ / "go", "");
  absl::StatusOr<RunResult> resumed = ResumeOn(first->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ(resumed->state, RunState::kSucceeded);
  EXPECT_EQ(Packs(), 2u) << "the resume did not recompute the released input of fit";
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT group_concat(state) FROM (SELECT state FROM attempts WHERE "
                       "task_id = 'pack' ORDER BY number)"),
            "succeeded,succeeded");
  EXPECT_EQ(ReadFile(Root("disk") / "runs" / first->run_id / "artifacts/fit/model"), "shards");
  // The recomputed artifact was released again once fit had read it.
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM events WHERE kind = 'released'"), "2");
}

TEST_F(VolatileHomeTest, AResumeThatDoesNotNeedAReleasedHomeKeepsItsProducer) {
  WriteFile(dir_ / "go", "");
  absl::StatusOr<RunResult> first = RunOn(Tiers());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);  // other exits 4; fit read pack.shards and succeeded
  EXPECT_THAT(Copies("pack", "shards"), ::testing::ElementsAre("ram home released -"));

  WriteFile(dir_ / "go-other", "");
  absl::StatusOr<RunResult> resumed = ResumeOn(first->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ(resumed->state, RunState::kSucceeded);
  EXPECT_EQ(Packs(), 1u) << "pack ran again though no task that reads it did";
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM attempts WHERE task_id IN ('pack', 'fit')"),
            "2");
}

TEST_F(VolatileHomeTest, TheCacheNeverReusesAReleasedArtifact) {
  WriteFile(dir_ / "go", "");
  WriteFile(dir_ / "go-other", "");
  absl::StatusOr<RunResult> first = RunOn(Tiers());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kSucceeded);
  absl::StatusOr<RunResult> second = RunOn(Tiers());
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->state, RunState::kSucceeded);
  // pack's bytes are gone: it runs again (not cached); fit then reads the
  // same bytes and is reused; other reads nothing volatile and is reused.
  EXPECT_EQ(Packs(), 2u);
  auto state = [&](const std::string& task) {
    return QueryValue(Db(), "SELECT state FROM attempts WHERE run_id = '" + second->run_id +
                                "' AND task_id = '" + task + "'");
  };
  EXPECT_EQ(state("pack"), "succeeded");
  EXPECT_EQ(state("fit"), "cached");
  EXPECT_EQ(state("other"), "cached");
}

}  // namespace
}  // namespace tierflow
