// What a user sees when a tier fails under a run, with the faults injected by
// the storage fault wrapper (storage_adapters/testing/fault_adapter.h) that
// EngineOptions::open_tier returns for one tier: a home that fills up in the
// middle of a write-back, a home that cannot be reached for a moment, a copy
// whose bytes are damaged. Real tasks on real posix tiers in a temporary
// folder, driven by scheduler::Engine. (tests/full_tier.sh fills a real
// tmpfs before the copy starts; data_movement_test has the home that cannot
// be reached at all, refused before anything runs.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "api/embedded.h"
#include "scheduler/engine.h"
#include "storage_adapters/testing/fault_adapter.h"
#include "storage_adapters/tier_factory.h"
#include "tests/engine/engine_testing.h"

namespace tierflow {
namespace {

using scheduler::EngineOptions;
using scheduler::RunResult;
using scheduler::RunState;
using storage::testing::Fault;
using storage::testing::FaultInjector;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace tierflow::testing;  // NOLINT: the test helpers

constexpr uint64_t kMiB = uint64_t{1} << 20;

// ingest writes 3 MiB of raw on disk, whose home is bulk (the only durable
// tier); train reads it at random for many passes, from a copy on ram;
// report reads it once where it was written.
constexpr std::string_view kPipeline = R"(name: faults
stages:
  ingest:
    kind: ingest
    run: 'head -c 3145728 /dev/urandom > "$TIERFLOW_OUTPUT_RAW"'
    outputs: {raw: 100MiB}
  train:
    kind: train
    inputs: {data: ingest.raw}
    run: 'wc -c < "$TIERFLOW_INPUT_DATA" > "$TIERFLOW_OUTPUT_MODEL"'
    outputs: {model: {size: 1MiB, durability: node}}
  report:
    inputs: {data: ingest.raw}
    io: {read: sequential, read_passes: 1}
    run: 'wc -c < "$TIERFLOW_INPUT_DATA" > "$TIERFLOW_OUTPUT_SIZE"'
    outputs: {size: {size: 1KiB, durability: node}}
)";

class EngineFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteFile(dir_ / "pipeline.yaml", std::string(kPipeline)); }

  std::string Db() const { return (dir_.path() / ".tierflow" / "tierflow.db").string(); }
  fs::path Root(const std::string& tier) const { return dir_.path() / "tiers" / tier; }
  std::string Key(const std::string& run_id) const {
    return "runs/" + run_id + "/artifacts/ingest/raw";
  }

  // An engine on ram, disk and bulk whose tier `faulty` goes through the
  // fault wrapper, governed by faults_.
  std::unique_ptr<scheduler::Engine> MakeEngine(const std::string& faulty) {
    EngineOptions options;
    options.db_path = Db();
    options.slots = 2;
    options.tiers = RamDiskBulkTiers(dir_.path() / "tiers");
    options.open_tier =
        [faulty, faults = faults_](
            const storage::TierConfig& tier) -> absl::StatusOr<std::unique_ptr<storage::Adapter>> {
      absl::StatusOr<std::unique_ptr<storage::Adapter>> adapter = storage::OpenTier(tier);
      if (!adapter.ok() || tier.name != faulty) return adapter;
      return storage::testing::WrapWithFaults(std::move(*adapter), tier.name, faults);
    };
    return api::MakeEmbeddedEngine(std::move(options));
  }

  // Runs the pipeline (or resumes `run`) to its end; a hang fails the test.
  absl::StatusOr<RunResult> Drive(scheduler::Engine& engine, const std::string& resume = "") {
    scheduler::RunRequest request;
    request.file = dir_ / "pipeline.yaml";
    auto result = std::async(std::launch::async, [&] {
      return resume.empty() ? engine.Run(request) : engine.Resume(resume);
    });
    if (result.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      engine.Cancel();
      ADD_FAILURE() << "the run hangs";
    }
    return result.get();
  }

  // Copies of ingest.raw as "tier role state source", in row order.
  std::vector<std::string> RawCopies() const {
    std::vector<std::string> copies;
    for (const Row& row :
         Query(Db(),
               "SELECT c.tier || ' ' || c.role || ' ' || c.state || ' ' || "
               "coalesce(c.source_tier, '-') FROM artifact_copies c JOIN artifacts a ON "
               "a.id = c.artifact_id WHERE a.task_id = 'ingest' AND a.name = 'raw' "
               "ORDER BY c.id")) {
      copies.push_back(row[0]);
    }
    return copies;
  }
  std::string TaskState(const std::string& task) const {
    return QueryValue(Db(), "SELECT state FROM tasks WHERE id = '" + task + "'");
  }
  // Every file under `tier`'s copy of run `run_id`'s ingest folder.
  std::vector<std::string> FilesOfIngest(const std::string& tier, const std::string& run_id) const {
    std::vector<std::string> files;
    const fs::path folder = Root(tier) / "runs" / run_id / "artifacts" / "ingest";
    if (!fs::exists(folder)) return files;
    for (const auto& entry : fs::recursive_directory_iterator(folder)) {
      if (entry.is_regular_file()) files.push_back(entry.path().filename().string());
    }
    return files;
  }

  TempDir dir_;
  std::shared_ptr<FaultInjector> faults_ = std::make_shared<FaultInjector>();
};

TEST_F(EngineFaultsTest, AHomeThatFillsUpMidCopyFailsTheRunNamingTheWriteBack) {
  Fault full;
  full.ops = storage::testing::kWrite;
  full.code = absl::StatusCode::kResourceExhausted;
  full.after_bytes = kMiB;
  faults_->Add(full);
  std::unique_ptr<scheduler::Engine> engine = MakeEngine("bulk");
  absl::StatusOr<RunResult> result = Drive(*engine);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GE(faults_->injected(), 1);

  EXPECT_EQ(result->state, RunState::kFailed);
  const std::string key = Key(result->run_id);
  ASSERT_EQ(result->write_back_failures.size(), 1u);
  EXPECT_THAT(result->write_back_failures[0],
              AllOf(HasSubstr("copying ingest.raw to tier bulk failed"),
                    HasSubstr("tier bulk: cannot write '" + key + "': the tier is full")));
  EXPECT_THAT(QueryValue(Db(), "SELECT message FROM runs"),
              HasSubstr("copying ingest.raw to tier bulk failed"));
  // Every task ran; only the home copy is missing, and nothing of it is
  // left half-written on bulk. The output is kept where it was written.
  EXPECT_EQ(TaskState("ingest"), "succeeded");
  EXPECT_EQ(TaskState("train"), "succeeded");
  EXPECT_EQ(TaskState("report"), "succeeded");
  EXPECT_THAT(FilesOfIngest("bulk", result->run_id), ::testing::IsEmpty());
  EXPECT_EQ(fs::file_size(Root("disk") / key), 3 * kMiB);
  EXPECT_THAT(RawCopies(), ::testing::Contains("bulk home failed disk"));
}

// The engine does not retry a failed copy within the run (the s3 adapter
// rides out a store's transient failures itself, beneath this interface):
// a home that cannot be reached for a moment fails the run with the
// write-back named, the output kept, and a resume writes it back without
// running its task again.
TEST_F(EngineFaultsTest, AHomeUnavailableForAMomentIsWrittenBackByAResume) {
  Fault blip;
  blip.ops = storage::testing::kWriteOps;
  blip.code = absl::StatusCode::kUnavailable;
  blip.times = 1;
  faults_->Add(blip);
  std::unique_ptr<scheduler::Engine> engine = MakeEngine("bulk");
  absl::StatusOr<RunResult> first = Drive(*engine);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(faults_->injected(), 1);
  EXPECT_EQ(first->state, RunState::kFailed);
  ASSERT_EQ(first->write_back_failures.size(), 1u);
  EXPECT_THAT(first->write_back_failures[0],
              AllOf(HasSubstr("copying ingest.raw to tier bulk failed"),
                    HasSubstr("the store cannot be reached")));

  const std::string key = Key(first->run_id);
  const std::string raw = ReadFile(Root("disk") / key);  // kept where it was written
  ASSERT_EQ(raw.size(), 3 * kMiB);

  absl::StatusOr<RunResult> resumed = Drive(*engine, first->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->state, RunState::kSucceeded)
      << ::testing::PrintToString(resumed->write_back_failures);
  EXPECT_THAT(resumed->write_back_failures, ::testing::IsEmpty());
  EXPECT_TRUE(ReadFile(Root("bulk") / key) == raw) << "the home copy differs from the output";
  // ingest ran once: its output was kept, only the copy was made again.
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM attempts WHERE task_id = 'ingest'"), "1");
  EXPECT_THAT(RawCopies(), ::testing::Contains("bulk home present disk"));
}

TEST_F(EngineFaultsTest, ADamagedCopyIsRecordedAndItsReaderFails) {
  Fault damaged;
  damaged.ops = storage::testing::kWrite;
  damaged.code = absl::StatusCode::kDataLoss;
  faults_->Add(damaged);
  std::unique_ptr<scheduler::Engine> engine = MakeEngine("ram");
  absl::StatusOr<RunResult> result = Drive(*engine);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GE(faults_->injected(), 1);
  EXPECT_EQ(result->state, RunState::kFailed);
  const std::string key = Key(result->run_id);
  const std::string failure = "copying ingest.raw to tier ram failed: tier ram: cannot write '" +
                              key + "': the bytes were damaged (injected fault)";

  // The copy is recorded failed, with why; so is the event.
  EXPECT_THAT(RawCopies(), ::testing::Contains("ram working failed disk"));
  EXPECT_THAT(QueryValue(Db(),
                         "SELECT c.message FROM artifact_copies c WHERE c.tier = 'ram' AND "
                         "c.state = 'failed'"),
              HasSubstr("the bytes were damaged"));
  EXPECT_EQ(QueryValue(Db(), "SELECT message FROM events WHERE kind = 'copy_failed'"), failure);
  // Its reader fails with it; the other reader, and the home copy, do not.
  EXPECT_EQ(TaskState("train"), "failed");
  EXPECT_EQ(QueryValue(Db(), "SELECT message FROM tasks WHERE id = 'train'"), failure);
  EXPECT_EQ(TaskState("report"), "succeeded");
  EXPECT_THAT(result->write_back_failures, ::testing::IsEmpty());
  EXPECT_EQ(fs::file_size(Root("bulk") / key), 3 * kMiB);
  EXPECT_THAT(FilesOfIngest("ram", result->run_id), ::testing::IsEmpty());
}

}  // namespace
}  // namespace tierflow
