// The outbox's SQL (lineage_outbox.h) on a real store: order, parking,
// retries, pruning, the sender's lease, and RunWriter's events going in with
// the transaction that makes them, and not without it.
#include "scheduler/lineage_outbox.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "scheduler/run_writer.h"

namespace tierflow::scheduler::lineage {
namespace {

EventSubject Subject() {
  EventSubject subject;
  subject.run_id = "p-1";
  subject.event_ms = 5;
  return subject;
}

NewRun SmallRun() {
  NewRun run;
  run.pipeline_name = "p";
  run.file = "p.yaml";
  run.yaml = "name: p";
  return run;
}

class LineageOutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tierflow-outbox.XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    auto db = OpenStore(dir_ + "/t.db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Add(const std::string& body) { ASSERT_TRUE(Enqueue(*db_, Subject(), body).ok()); }
  int64_t Count(const std::string& sql) {
    auto statement = db_->Prepare(sql);
    EXPECT_TRUE(statement.ok());
    auto row = statement->Step();
    EXPECT_TRUE(row.ok() && *row);
    return statement->Int(0);
  }

  std::string dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(LineageOutboxTest, NextPendingIsTheOldestEvenWhileItWaitsToBeTriedAgain) {
  Add("a");
  Add("b");
  auto next = NextPending(*db_);
  ASSERT_TRUE(next.ok() && *next);
  EXPECT_EQ((*next)->body, "a");
  ASSERT_TRUE(RetryLater(*db_, (*next)->seq, 1'000'000, "HTTP 503: busy").ok());
  next = NextPending(*db_);
  ASSERT_TRUE(next.ok() && *next);
  EXPECT_EQ((*next)->body, "a");  // never skips ahead to "b"
  EXPECT_EQ((*next)->tries, 1);
  EXPECT_EQ((*next)->next_try_at, 1'000'000);
  EXPECT_EQ((*next)->answer, "HTTP 503: busy");
}

TEST_F(LineageOutboxTest, ARejectedEventIsParkedAndTheNextGoesOn) {
  Add("a");
  Add("b");
  auto first = NextPending(*db_);
  ASSERT_TRUE(first.ok() && *first);
  ASSERT_TRUE(ParkRejected(*db_, (*first)->seq, "HTTP 400: bad facet").ok());
  auto next = NextPending(*db_);
  ASSERT_TRUE(next.ok() && *next);
  EXPECT_EQ((*next)->body, "b");
  auto rejected = ListRejected(*db_);
  ASSERT_TRUE(rejected.ok());
  ASSERT_EQ(rejected->size(), 1u);
  EXPECT_EQ((*rejected)[0].body, "a");
  EXPECT_EQ((*rejected)[0].answer, "HTTP 400: bad facet");
  EXPECT_EQ(*CountPending(*db_), 1);
}

TEST_F(LineageOutboxTest, DeliveredRowsAreKeptForTheRetentionOrDeletedAtOnce) {
  Add("a");
  Add("b");
  ASSERT_TRUE(MarkDelivered(*db_, 1, 100, /*keep_delivered=*/true).ok());
  ASSERT_TRUE(MarkDelivered(*db_, 2, 200, /*keep_delivered=*/false).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM lineage_outbox"), 1);
  EXPECT_EQ(*PruneDelivered(*db_, 100), 0);  // delivered at 100: not before 100
  EXPECT_EQ(*PruneDelivered(*db_, 101), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM lineage_outbox"), 0);
}

TEST_F(LineageOutboxTest, ABatchIsTheOldestPendingInOrderAndItsOutcomesGoInTogether) {
  for (const char* body : {"a", "b", "c", "d", "e"}) Add(body);
  auto batch = PendingBatch(*db_, 4);
  ASSERT_TRUE(batch.ok()) << batch.status();
  std::vector<std::string> bodies;
  for (const OutboxRow& row : *batch) bodies.push_back(row.body);
  EXPECT_EQ(bodies, (std::vector<std::string>{"a", "b", "c", "d"}));
  // a delivered, b rejected, c delivered, d failed: the batch stopped at d.
  Deliveries deliveries;
  deliveries.delivered = {(*batch)[0].seq, (*batch)[2].seq};
  deliveries.rejected = {{(*batch)[1].seq, "HTTP 400: no"}};
  deliveries.retry =
      Deliveries::Retry{.seq = (*batch)[3].seq, .next_try_at = 9000, .answer = "HTTP 503: busy"};
  ASSERT_TRUE(RecordDeliveries(*db_, deliveries, 700, /*keep_delivered=*/true).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM lineage_outbox WHERE state = 'delivered' AND "
                  "delivered_at = 700"),
            2);
  EXPECT_EQ(Count("SELECT count(*) FROM lineage_outbox WHERE state = 'rejected'"), 1);
  batch = PendingBatch(*db_, 4);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 2u);
  EXPECT_EQ((*batch)[0].body, "d");  // never skipped: e waits behind it
  EXPECT_EQ((*batch)[0].next_try_at, 9000);
  EXPECT_EQ((*batch)[0].tries, 1);
  EXPECT_EQ((*batch)[1].body, "e");
  EXPECT_TRUE(RecordDeliveries(*db_, Deliveries{}, 800, true).ok());  // nothing to record
}

TEST_F(LineageOutboxTest, OneSenderHoldsTheLeaseUntilItExpiresOrItsOwnerIsDead) {
  EXPECT_TRUE(*TakeSenderLease(*db_, "a", 1000, 30'000));
  EXPECT_FALSE(*TakeSenderLease(*db_, "b", 2000, 30'000));
  EXPECT_TRUE(*TakeSenderLease(*db_, "a", 2000, 30'000));  // renewed: until 32000
  EXPECT_FALSE(*TakeSenderLease(*db_, "b", 31'000, 30'000));
  EXPECT_TRUE(*TakeSenderLease(*db_, "b", 32'001, 30'000));  // a's expired
  EXPECT_EQ(*SenderLeaseOwner(*db_), "b");
  EXPECT_TRUE(*TakeSenderLease(*db_, "c", 33'000, 30'000, /*dead_owner=*/"b"));
  ReleaseSenderLease(*db_, "c");
  EXPECT_EQ(*SenderLeaseOwner(*db_), "");
}

TEST_F(LineageOutboxTest, RunWriterEventsGoInWithTheirTransactionOnly) {
  RunWriter writer(*db_, [] { return 0.5; });
  writer.EnableOutbox(ExportSettings{});
  {
    auto transaction = writer.BeginOnce();
    ASSERT_TRUE(transaction.ok());
    auto run_id = writer.CreateRun(SmallRun());
    ASSERT_TRUE(run_id.ok()) << run_id.status();
    ASSERT_TRUE(writer.Prepare(*run_id).ok());
    ASSERT_TRUE(writer.AddEvent("", 0, "run_started", "").ok());
    // Rolled back: neither the run nor its START.
  }
  EXPECT_EQ(Count("SELECT count(*) FROM lineage_outbox"), 0);
  auto transaction = writer.BeginOnce();
  ASSERT_TRUE(transaction.ok());
  auto run_id = writer.CreateRun(SmallRun());
  ASSERT_TRUE(run_id.ok());
  ASSERT_TRUE(writer.Prepare(*run_id).ok());
  ASSERT_TRUE(writer.AddEvent("", 0, "run_started", "").ok());
  ASSERT_TRUE(writer.AddEvent("", 0, "run_supervised", "not a state change").ok());
  ASSERT_TRUE(writer.FinishRun("cancelled", "stopped").ok());
  ASSERT_TRUE(writer.AddEvent("", 0, "run_cancelled", "stopped").ok());
  ASSERT_TRUE(writer.Commit(*transaction).ok());
  // Each at the time of its run_* event, as lineage_events.h defines it.
  auto statement = db_->Prepare(
      "SELECT o.run_id, o.event_type, o.event_ms = (SELECT time FROM events e WHERE e.run_id = "
      "o.run_id AND e.kind = CASE o.event_type WHEN 'START' THEN 'run_started' ELSE "
      "'run_cancelled' END) FROM lineage_outbox o ORDER BY seq");
  ASSERT_TRUE(statement.ok());
  std::vector<std::string> events;
  while (*statement->Step()) {
    events.push_back(statement->Text(0) + " " + statement->Text(1) + " " + statement->Text(2));
  }
  EXPECT_EQ(events, (std::vector<std::string>{*run_id + " START 1", *run_id + " ABORT 1"}));
}

TEST_F(LineageOutboxTest, NothingIsWrittenWithoutAnEndpoint) {
  RunWriter writer(*db_, [] { return 0.5; });
  auto transaction = writer.BeginOnce();
  ASSERT_TRUE(transaction.ok());
  ASSERT_TRUE(writer.CreateRun(SmallRun()).ok());
  ASSERT_TRUE(writer.Commit(*transaction).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM runs"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM lineage_outbox"), 0);
}

TEST(LineageEventTypes, EndsMapAsDocumented) {
  EXPECT_EQ(RunEventOfKind("run_started"), EventType::kStart);
  EXPECT_EQ(RunEventOfKind("run_resumed"), EventType::kRunning);
  EXPECT_EQ(RunEventOfKind("run_succeeded"), EventType::kComplete);
  EXPECT_EQ(RunEventOfKind("run_failed"), EventType::kFail);
  EXPECT_EQ(RunEventOfKind("run_cancelled"), EventType::kAbort);
  EXPECT_EQ(RunEventOfKind("run_supervised"), std::nullopt);
  EXPECT_EQ(RunEventOfKind("task_started"), std::nullopt);
  EXPECT_EQ(AttemptEndType(AttemptState::kSucceeded), EventType::kComplete);
  EXPECT_EQ(AttemptEndType(AttemptState::kCached), EventType::kComplete);
  EXPECT_EQ(AttemptEndType(AttemptState::kFailed), EventType::kFail);
  EXPECT_EQ(AttemptEndType(AttemptState::kTimedOut), EventType::kFail);
  EXPECT_EQ(AttemptEndType(AttemptState::kLost), EventType::kFail);
  EXPECT_EQ(AttemptEndType(AttemptState::kCancelled), EventType::kAbort);
  EXPECT_EQ(AttemptEndType(AttemptState::kNotStarted), EventType::kAbort);
}

}  // namespace
}  // namespace tierflow::scheduler::lineage
