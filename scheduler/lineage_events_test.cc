#include "scheduler/lineage_events.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "scheduler/placement.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler::lineage {
namespace {

using testing::kT0;
constexpr int64_t kHour = 3600 * 1000;
constexpr int64_t kSecond = 1000;
constexpr int64_t kRetried = kT0 + kHour;  // quickstart-3f9a1c's start
const std::string kRun = "quickstart-3f9a1c";

// The fixture's runs with the run events the engine writes
// (run_started, run_failed) for the failed run.
class LineageEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::RunFixture> fixture =
        testing::WriteRunFixture(testing::MakeTempDir(), testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    absl::StatusOr<std::unique_ptr<Database>> db = OpenStore(fixture->db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    ASSERT_TRUE(
        db_->Execute(StrCat("INSERT INTO events(run_id, task_id, attempt_id, time, kind, "
                            "message) VALUES ('",
                            kRun, "', NULL, NULL, ", kRetried, ", 'run_started', '6 tasks'), ('",
                            kRun, "', NULL, NULL, ", kRetried + 95 * kSecond,
                            ", 'run_failed', '1 failed, 1 upstream_failed')"))
            .ok());
    settings_.host = "testhost";
  }

  std::vector<nlohmann::json> Events() {
    absl::StatusOr<std::vector<std::string>> lines = RenderRunEvents(*db_, kRun, settings_);
    EXPECT_TRUE(lines.ok()) << lines.status();
    std::vector<nlohmann::json> events;
    if (!lines.ok()) return events;
    for (const std::string& line : *lines) {
      EXPECT_EQ(line.find('\n'), std::string::npos) << line;
      events.push_back(nlohmann::json::parse(line));
    }
    return events;
  }

  std::unique_ptr<Database> db_;
  ExportSettings settings_;
};

TEST(LineageUuidTest, RunAndAttemptIdsAreUuidV5AsPythonComputesThem) {
  // python3: uuid.uuid5(UUID('6b3e1f52-9a4d-4c0e-8f27-31d5a2607c19'), 'run:quickstart-3f9a1c')
  EXPECT_EQ(RunUuid("quickstart-3f9a1c"), "44f6cc0e-4770-533d-8459-c7516bea2805");
  // ... and 'attempt:quickstart-3f9a1c:8'
  EXPECT_EQ(AttemptUuid("quickstart-3f9a1c", 8), "9622815c-3085-5e77-a053-17bff5c3f132");
  const std::string id = AttemptUuid("quickstart-3f9a1c", 9);
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '5');                                          // version 5
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);  // RFC 4122 variant
  EXPECT_NE(id, AttemptUuid("quickstart-3f9a1c", 8));
  EXPECT_EQ(RunUuid("quickstart-3f9a1c"), RunUuid("quickstart-3f9a1c"));
}

struct Expected {
  std::optional<int64_t> attempt;
  EventType type;
  int64_t at;  // seconds after the run's start
};

TEST_F(LineageEventsTest, SubjectsFollowTheStateChangesInOrder) {
  absl::StatusOr<std::vector<EventSubject>> subjects = RunEventSubjects(*db_, kRun);
  ASSERT_TRUE(subjects.ok()) << subjects.status();
  const std::vector<Expected> expected = {
      {std::nullopt, EventType::kStart, 0},
      {7, EventType::kStart, 0},
      {8, EventType::kStart, 0},
      {8, EventType::kFail, 5},
      {7, EventType::kComplete, 10},
      {9, EventType::kStart, 15},
      {9, EventType::kComplete, 25},
      {10, EventType::kStart, 25},  // the cached reuse: START then COMPLETE
      {10, EventType::kComplete, 26},
      {11, EventType::kStart, 26},
      {11, EventType::kComplete, 56},
      {12, EventType::kStart, 56},
      {12, EventType::kFail, 60},
      {13, EventType::kStart, 65},
      {13, EventType::kFail, 95},            // timed out
      {std::nullopt, EventType::kFail, 95},  // the run's end comes after its attempts'
  };
  ASSERT_EQ(subjects->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*subjects)[i].run_id, kRun);
    EXPECT_EQ((*subjects)[i].attempt_id, expected[i].attempt);
    EXPECT_EQ(EventTypeWord((*subjects)[i].type), EventTypeWord(expected[i].type));
    EXPECT_EQ((*subjects)[i].event_ms, kRetried + expected[i].at * kSecond);
  }
}

TEST_F(LineageEventsTest, OutboxSubjectsAreTheOnesExportLists) {
  absl::StatusOr<std::vector<EventSubject>> subjects = RunEventSubjects(*db_, kRun);
  ASSERT_TRUE(subjects.ok()) << subjects.status();
  absl::StatusOr<EventSubject> latest = LatestRunSubject(*db_, kRun);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->type, EventType::kFail);
  EXPECT_EQ(latest->event_ms, subjects->back().event_ms);
  absl::StatusOr<EventSubject> start = AttemptStartSubject(*db_, 12);
  absl::StatusOr<std::optional<EventSubject>> end = AttemptEndSubject(*db_, 12);
  ASSERT_TRUE(start.ok() && end.ok() && end->has_value());
  EXPECT_EQ(start->event_ms, (*subjects)[11].event_ms);
  EXPECT_EQ(start->attempt_id, (*subjects)[11].attempt_id);
  EXPECT_EQ((*end)->event_ms, (*subjects)[12].event_ms);
  EXPECT_EQ((*end)->type, (*subjects)[12].type);
  // A running attempt has no end yet; the running run has no run events.
  absl::StatusOr<std::optional<EventSubject>> running = AttemptEndSubject(*db_, 14);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_FALSE(running->has_value());
  EXPECT_EQ(LatestRunSubject(*db_, "quickstart-c0ffee").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(RunEventSubjects(*db_, "nope-000000").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LineageEventsTest, RenderingIsDeterministic) {
  absl::StatusOr<std::vector<std::string>> first = RenderRunEvents(*db_, kRun, settings_);
  absl::StatusOr<std::vector<std::string>> second = RenderRunEvents(*db_, kRun, settings_);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(first->size(), 16u);
  // One subject renders the same bytes alone as in the run's list.
  absl::StatusOr<std::vector<EventSubject>> subjects = RunEventSubjects(*db_, kRun);
  ASSERT_TRUE(subjects.ok());
  absl::StatusOr<std::string> one = RenderEvent(*db_, (*subjects)[3], settings_);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(*one, (*first)[3]);
}

TEST_F(LineageEventsTest, RunEventsAreThePipelineJob) {
  std::vector<nlohmann::json> events = Events();
  ASSERT_EQ(events.size(), 16u);
  const nlohmann::json& start = events.front();
  EXPECT_EQ(start["eventType"], "START");
  EXPECT_EQ(start["eventTime"], "2024-05-01T13:00:00.000Z");
  EXPECT_EQ(start["schemaURL"],
            "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent");
  EXPECT_EQ(start["job"]["namespace"], "tierflow");
  EXPECT_EQ(start["job"]["name"], "quickstart");
  EXPECT_EQ(start["job"]["facets"]["jobType"]["jobType"], "PIPELINE");
  EXPECT_EQ(start["job"]["facets"]["jobType"]["integration"], "TIERFLOW");
  EXPECT_EQ(start["run"]["runId"], RunUuid(kRun));
  EXPECT_EQ(start["run"]["facets"]["processing_engine"]["name"], "tierflow");
  EXPECT_FALSE(start.contains("inputs"));
  const nlohmann::json& end = events.back();
  EXPECT_EQ(end["eventType"], "FAIL");
  EXPECT_EQ(end["eventTime"], "2024-05-01T13:01:35.000Z");
  EXPECT_EQ(end["run"]["facets"]["errorMessage"]["message"], "1 failed, 1 upstream_failed");
}

TEST_F(LineageEventsTest, AFailedAttemptCarriesItsErrorAndItsParent) {
  std::vector<nlohmann::json> events = Events();
  ASSERT_EQ(events.size(), 16u);
  const nlohmann::json& failed = events[12];  // publish #1
  EXPECT_EQ(failed["eventType"], "FAIL");
  EXPECT_EQ(failed["job"]["name"], "quickstart.publish");
  EXPECT_EQ(failed["job"]["facets"]["jobType"]["jobType"], "TASK");
  EXPECT_EQ(failed["run"]["runId"], AttemptUuid(kRun, 12));
  const nlohmann::json& parent = failed["run"]["facets"]["parent"];
  EXPECT_EQ(parent["run"]["runId"], RunUuid(kRun));
  EXPECT_EQ(parent["job"]["name"], "quickstart");
  EXPECT_EQ(parent["job"]["namespace"], "tierflow");
  const nlohmann::json& error = failed["run"]["facets"]["errorMessage"];
  EXPECT_EQ(error["message"], "exit 1");
  EXPECT_EQ(error["programmingLanguage"], "unknown");  // an argv command
  EXPECT_EQ(error["stackTrace"], "publishing model\nupload refused: HTTP 403");
  EXPECT_EQ(error["_producer"], failed["producer"]);
  // The retry is another run of the same job.
  const nlohmann::json& retry = events[13];
  EXPECT_EQ(retry["eventType"], "START");
  EXPECT_EQ(retry["job"]["name"], "quickstart.publish");
  EXPECT_EQ(retry["run"]["runId"], AttemptUuid(kRun, 13));
  EXPECT_FALSE(retry["run"]["facets"].contains("errorMessage"));
}

TEST_F(LineageEventsTest, AttemptEndsCarryTheirDatasets) {
  std::vector<nlohmann::json> events = Events();
  ASSERT_EQ(events.size(), 16u);
  const nlohmann::json& ingest = events[6];  // ingest[1] #2 COMPLETE
  ASSERT_EQ(ingest["eventType"], "COMPLETE");
  ASSERT_EQ(ingest["outputs"].size(), 1u);
  const nlohmann::json& raw = ingest["outputs"][0];
  EXPECT_EQ(raw["namespace"], "file://testhost");
  EXPECT_EQ(raw["name"], "quickstart/ingest/raw/1");  // the item
  EXPECT_EQ(raw["facets"]["version"]["datasetVersion"], "xxh3:" + std::string(32, 'b'));
  EXPECT_EQ(raw["outputFacets"]["outputStatistics"]["size"], 16384);
  EXPECT_EQ(raw["outputFacets"]["outputStatistics"]["fileCount"], 1);
  const nlohmann::json& copies = raw["facets"]["tierflow_storage"]["copies"];
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0]["tier"], "local");
  EXPECT_EQ(copies[0]["kind"], "posix");
  EXPECT_EQ(copies[0]["role"], "home");
  EXPECT_EQ(copies[0]["state"], "present");
  EXPECT_TRUE(copies[0]["uri"].get<std::string>().starts_with("file://testhost/"));
  EXPECT_TRUE(copies[0]["uri"].get<std::string>().ends_with("/artifacts/ingest/raw/1"));
  EXPECT_EQ(raw["facets"]["tierflow_storage"]["artifact"], kRun + "/ingest[1]/raw");
  EXPECT_EQ(ingest["inputs"].size(), 0u);
  EXPECT_FALSE(events[5].contains("outputs"));  // its START has none

  const nlohmann::json& clean = events[8];  // the cached reuse's COMPLETE
  ASSERT_EQ(clean["eventType"], "COMPLETE");
  ASSERT_EQ(clean["inputs"].size(), 2u);
  EXPECT_EQ(clean["inputs"][0]["name"], "quickstart/ingest/raw/0");
  EXPECT_EQ(clean["inputs"][1]["name"], "quickstart/ingest/raw/1");
  EXPECT_FALSE(clean["inputs"][0].contains("outputFacets"));
  ASSERT_EQ(clean["outputs"].size(), 1u);
  EXPECT_EQ(clean["outputs"][0]["name"], "quickstart/clean/clean");

  // train's model: the home copy and the evicted working copy on nvme.
  const nlohmann::json& train = events[10];
  ASSERT_EQ(train["outputs"].size(), 1u);
  const nlohmann::json& model_copies = train["outputs"][0]["facets"]["tierflow_storage"]["copies"];
  ASSERT_EQ(model_copies.size(), 2u);
  EXPECT_EQ(model_copies[1]["tier"], "nvme");
  EXPECT_EQ(model_copies[1]["role"], "working");
  EXPECT_EQ(model_copies[1]["state"], "evicted");
}

TEST_F(LineageEventsTest, TheSameOutputOfTwoRunsIsTheSameDataset) {
  ASSERT_TRUE(db_->Execute("INSERT INTO events(run_id, time, kind, message) VALUES "
                           "('quickstart-1a2b3c', 1, 'run_started', '')")
                  .ok());
  absl::StatusOr<std::vector<std::string>> first =
      RenderRunEvents(*db_, "quickstart-1a2b3c", settings_);
  absl::StatusOr<std::vector<std::string>> second = RenderRunEvents(*db_, kRun, settings_);
  ASSERT_TRUE(first.ok() && second.ok());
  auto outputs = [](const std::vector<std::string>& lines) {
    std::map<std::string, std::string> versions;  // name -> version
    for (const std::string& line : lines) {
      nlohmann::json event = nlohmann::json::parse(line);
      for (const nlohmann::json& out : event.value("outputs", nlohmann::json::array())) {
        versions[out["name"]] = out["facets"]["version"]["datasetVersion"];
      }
    }
    return versions;
  };
  std::map<std::string, std::string> a = outputs(*first);
  std::map<std::string, std::string> b = outputs(*second);
  ASSERT_TRUE(a.contains("quickstart/train/model") && b.contains("quickstart/train/model"));
  EXPECT_NE(a["quickstart/train/model"], b["quickstart/train/model"]);  // new versions
  EXPECT_EQ(a["quickstart/ingest/raw/0"], b["quickstart/ingest/raw/0"]);
}

TEST_F(LineageEventsTest, AnS3HomeIsTheBucketsNamespace) {
  // The run placed train's model on an s3 tier; its home copy is there.
  PlacementTier archive;
  archive.config.name = "archive";
  archive.config.adapter = "s3";
  archive.config.bucket = "models";
  archive.config.prefix = "tf";
  PlacementTier local;
  local.config.name = "local";
  local.config.adapter = "posix";
  local.config.root = "/data";
  absl::StatusOr<Statement> tiers = db_->Prepare("UPDATE runs SET tiers_json = ? WHERE id = ?");
  ASSERT_TRUE(tiers.ok());
  tiers->Bind(1, PlacementTiersToJson({archive, local})).Bind(2, kRun);
  ASSERT_TRUE(tiers->Run().ok());
  ASSERT_TRUE(
      db_->Execute(StrCat("INSERT INTO placements(run_id, task_id, kind, name, seq, tier, "
                          "detail_json, reason) VALUES ('",
                          kRun,
                          "', 'train', 'output', 'model', 1, 'archive', '{}', 'x');"
                          "INSERT INTO artifact_copies(artifact_id, tier, uri, role, bytes, "
                          "content_hash, state, created_at) VALUES (9, 'archive', "
                          "'s3://models/tf/runs/",
                          kRun, "/artifacts/train/model', 'home', 4096, 'h', 'copying', ",
                          kRetried + 57 * kSecond, ")"))
          .ok());
  std::vector<nlohmann::json> events = Events();
  ASSERT_EQ(events.size(), 16u);
  const nlohmann::json& model = events[10]["outputs"][0];
  EXPECT_EQ(model["namespace"], "s3://models");
  EXPECT_EQ(model["name"], "quickstart/train/model");
  const nlohmann::json& copies = model["facets"]["tierflow_storage"]["copies"];
  ASSERT_EQ(copies.size(), 3u);
  EXPECT_EQ(copies[0]["tier"], "local");
  EXPECT_EQ(copies[0]["kind"], "posix");
  EXPECT_TRUE(copies[0]["uri"].get<std::string>().starts_with("file://testhost/"));
  EXPECT_EQ(copies[1]["tier"], "nvme");  // not in tiers_json: its kind by its uri
  EXPECT_EQ(copies[1]["kind"], "posix");
  EXPECT_EQ(copies[2]["kind"], "s3");
  EXPECT_EQ(copies[2]["state"], "copying");
  EXPECT_EQ(copies[2]["uri"], StrCat("s3://models/tf/runs/", kRun, "/artifacts/train/model"));
  // Its readers see the same dataset.
  const nlohmann::json& publish = events[12];  // publish #1 FAIL
  ASSERT_EQ(publish["inputs"].size(), 1u);
  EXPECT_EQ(publish["inputs"][0]["namespace"], "s3://models");
}

TEST_F(LineageEventsTest, AResumedRunIsRunningAgainAndEndsAgain) {
  // Resumed 10 minutes after it failed, then cancelled.
  const int64_t resumed = kRetried + 10 * 60 * kSecond;
  ASSERT_TRUE(db_->Execute(StrCat("INSERT INTO events(run_id, time, kind, message) VALUES ('", kRun,
                                  "', ", resumed, ", 'run_resumed', '5 of 6 tasks kept'), ('", kRun,
                                  "', ", resumed + kSecond, ", 'run_cancelled', 'cancelled')"))
                  .ok());
  absl::StatusOr<std::vector<EventSubject>> subjects = RunEventSubjects(*db_, kRun);
  ASSERT_TRUE(subjects.ok()) << subjects.status();
  ASSERT_EQ(subjects->size(), 18u);
  EXPECT_EQ((*subjects)[15].type, EventType::kFail);
  EXPECT_EQ((*subjects)[16].type, EventType::kRunning);
  EXPECT_EQ((*subjects)[16].event_ms, resumed);
  EXPECT_EQ((*subjects)[17].type, EventType::kAbort);
  absl::StatusOr<EventSubject> latest = LatestRunSubject(*db_, kRun);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->type, EventType::kAbort);
  std::vector<nlohmann::json> events = Events();
  ASSERT_EQ(events.size(), 18u);
  EXPECT_EQ(events[16]["eventType"], "RUNNING");
  EXPECT_EQ(events[16]["run"]["runId"], RunUuid(kRun));
  EXPECT_EQ(events[17]["eventType"], "ABORT");
  EXPECT_FALSE(events[17]["run"]["facets"].contains("errorMessage"));
}

TEST_F(LineageEventsTest, AnAttemptOfAnotherRunIsRefused) {
  EventSubject subject{.run_id = "quickstart-1a2b3c",
                       .attempt_id = 12,
                       .type = EventType::kStart,
                       .event_ms = kRetried};
  absl::StatusOr<std::string> event = RenderEvent(*db_, subject, settings_);
  EXPECT_EQ(event.status().code(), absl::StatusCode::kInvalidArgument);
  subject.attempt_id = 999;
  EXPECT_EQ(RenderEvent(*db_, subject, settings_).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tierflow::scheduler::lineage
