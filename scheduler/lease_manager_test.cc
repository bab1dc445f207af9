#include "scheduler/lease_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <map>

namespace tierflow::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// What the manager told one worker, in order: "registered ID",
// "lease ATTEMPT", "cancel ATTEMPT kill|term", "evict TIER/KEY", "close".
// With `batches`, several leases at once read "leases A B C".
class FakeChannel final : public WorkerChannel {
 public:
  explicit FakeChannel(bool batches = false) : batches_(batches) {}
  void Leases(const std::vector<TaskLaunch>& launches) override {
    if (!batches_) {
      WorkerChannel::Leases(launches);
      return;
    }
    std::string text = "leases";
    for (const TaskLaunch& launch : launches) text += " " + std::to_string(launch.attempt_id);
    std::lock_guard lock(mu_);
    sent_.push_back(text);
  }
  void Registered(const std::string& worker_id, const std::string&,
                  std::chrono::milliseconds heartbeat_interval) override {
    std::lock_guard lock(mu_);
    heartbeat_interval_ = heartbeat_interval;
    sent_.push_back("registered " + worker_id);
  }
  void Lease(const TaskLaunch& launch) override {
    std::lock_guard lock(mu_);
    sent_.push_back("lease " + std::to_string(launch.attempt_id));
  }
  void Cancel(int64_t attempt_id, bool kill_now) override {
    std::lock_guard lock(mu_);
    sent_.push_back("cancel " + std::to_string(attempt_id) + (kill_now ? " kill" : " term"));
  }
  void Evict(const std::string& tier, const std::string& key) override {
    std::lock_guard lock(mu_);
    sent_.push_back("evict " + tier + "/" + key);
  }
  void Close() override {
    std::lock_guard lock(mu_);
    sent_.push_back("close");
  }
  std::vector<std::string> Sent() const {
    std::lock_guard lock(mu_);
    return sent_;
  }
  std::chrono::milliseconds heartbeat_interval() const {
    std::lock_guard lock(mu_);
    return heartbeat_interval_;
  }

 private:
  const bool batches_;
  mutable std::mutex mu_;
  std::vector<std::string> sent_;
  std::chrono::milliseconds heartbeat_interval_{0};
};

// Reports as they arrive, on the caller's thread.
class RecordingSink final : public ReportSink {
 public:
  void Report(TaskReport report) override {
    std::lock_guard lock(mu_);
    reports_.push_back(std::move(report));
  }
  std::vector<TaskReport> Reports() const {
    std::lock_guard lock(mu_);
    return reports_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<TaskReport> reports_;
};

TaskLaunch Task(int64_t attempt_id) {
  TaskLaunch task;
  task.attempt_id = attempt_id;
  task.task_id = "t" + std::to_string(attempt_id);
  task.cpus = 1;
  return task;
}

TaskReport Outcome(int64_t attempt_id, TaskReport::Outcome outcome) {
  TaskReport report;
  report.attempt_id = attempt_id;
  report.outcome = outcome;
  return report;
}

class LeaseManagerTest : public ::testing::Test {
 protected:
  LeaseManagerTest() : manager_({"c1", std::chrono::seconds(10), &clock_}) {}

  // Registers a worker of `slots` slots; returns its id.
  std::string Connect(const std::string& name, int slots,
                      const std::shared_ptr<FakeChannel>& channel) {
    WorkerSpec spec;
    spec.name = name;
    spec.slots = slots;
    absl::StatusOr<std::string> id = manager_.Register(spec, channel);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  }

  FakeClock clock_;
  LeaseManager manager_;
  std::shared_ptr<RecordingSink> sink_ = std::make_shared<RecordingSink>();
};

TEST_F(LeaseManagerTest, TellsAWorkerItIsRegisteredBeforeLeasingItQueuedTasks) {
  manager_.Submit(Task(1), sink_, 0, 1);
  EXPECT_THAT(manager_.WhyWaiting(1), testing::Optional(std::string("no worker is connected")));
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 2, channel);
  EXPECT_THAT(id, StartsWith("w1@c1#"));
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 1"));
  EXPECT_EQ(channel->heartbeat_interval(), std::chrono::milliseconds(2500));
  EXPECT_EQ(manager_.WhyWaiting(1), std::nullopt);
  std::vector<WorkerStatus> workers = manager_.Workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].running, 1);
  EXPECT_EQ(workers[0].id, id);
}

TEST_F(LeaseManagerTest, ARepeatedLeaseRequestKeepsTheExistingGrant) {
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 4, channel);
  manager_.Submit(Task(7), sink_, 0, 1);
  manager_.Submit(Task(7), sink_, 0, 1);  // leased already
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 7"));
  EXPECT_EQ(manager_.Workers()[0].running, 1);

  // Queued, not leased yet: it keeps its one place in the queue.
  auto busy = std::make_shared<FakeChannel>();
  manager_.Disconnected(id);
  manager_.Submit(Task(8), sink_, 0, 1);
  manager_.Submit(Task(8), sink_, 0, 1);
  const std::string again = Connect("w2", 4, busy);
  EXPECT_THAT(busy->Sent(), ElementsAre("registered " + again, "lease 8"));
}

TEST_F(LeaseManagerTest, TheStartReportCarriesWhyTheWorkerWasChosen) {
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 3, channel);
  manager_.Submit(Task(1), sink_, 0, 1);
  manager_.Report(id, Outcome(1, TaskReport::Outcome::kStarted));
  manager_.Report(id, Outcome(1, TaskReport::Outcome::kSucceeded));
  std::vector<TaskReport> reports = sink_->Reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].message, "leased to w1, the worker with the most free slots (3)");
  EXPECT_EQ(reports[0].worker, "w1");
  EXPECT_EQ(reports[0].worker_id, id);
  EXPECT_EQ(reports[1].outcome, TaskReport::Outcome::kSucceeded);
  EXPECT_EQ(manager_.Workers()[0].running, 0);
}

TEST_F(LeaseManagerTest, LeasesHigherPriorityThenEarlierRunsFirst) {
  manager_.Submit(Task(1), sink_, 0, 2);
  manager_.Submit(Task(2), sink_, 0, 1);  // an earlier run
  manager_.Submit(Task(3), sink_, 5, 3);  // a higher priority
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 1, channel);
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 3"));
  manager_.Report(id, Outcome(3, TaskReport::Outcome::kFailed));
  manager_.Report(id, Outcome(2, TaskReport::Outcome::kSucceeded));
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 3", "lease 2", "lease 1"));
}

// The queue's place for a task is found from its back: ties keep their
// arrival order, and a task still goes before everything it outranks.
TEST_F(LeaseManagerTest, QueuedTasksKeepPriorityRunAndArrivalOrder) {
  manager_.Submit(Task(1), sink_, 0, 2);
  manager_.Submit(Task(2), sink_, 0, 2);   // same run: after 1
  manager_.Submit(Task(3), sink_, 0, 1);   // an earlier run: before both
  manager_.Submit(Task(4), sink_, 5, 9);   // a higher priority: first
  manager_.Submit(Task(5), sink_, 0, 1);   // the earlier run again: after 3
  manager_.Submit(Task(6), sink_, -1, 0);  // a lower priority: last
  manager_.Submit(Task(7), sink_, 0, 2);   // after 2
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 1, channel);
  for (int64_t attempt : {4, 3, 5, 1, 2, 7}) {
    manager_.Report(id, Outcome(attempt, TaskReport::Outcome::kSucceeded));
  }
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 4", "lease 3", "lease 5",
                                           "lease 1", "lease 2", "lease 7", "lease 6"));
}

// N free slots, N queued tasks: one message carries the N leases, in
// queue order; each worker gets only its own.
TEST_F(LeaseManagerTest, FreeSlotsOfAWorkerAreLeasedInOneBatch) {
  for (int64_t attempt = 1; attempt <= 5; ++attempt) manager_.Submit(Task(attempt), sink_, 0, 1);
  auto big = std::make_shared<FakeChannel>(/*batches=*/true);
  const std::string big_id = Connect("big", 3, big);
  EXPECT_THAT(big->Sent(), ElementsAre("registered " + big_id, "leases 1 2 3"));
  auto small = std::make_shared<FakeChannel>(/*batches=*/true);
  const std::string small_id = Connect("small", 1, small);
  EXPECT_THAT(small->Sent(), ElementsAre("registered " + small_id, "lease 4"));
  // One slot freed: one lease, alone.
  manager_.Report(big_id, Outcome(2, TaskReport::Outcome::kSucceeded));
  EXPECT_THAT(big->Sent(), ElementsAre("registered " + big_id, "leases 1 2 3", "lease 5"));
}

// A worker lost with a batch of leases, some started and some not: every
// one of them is reported lost (and run again), each saying whether it had
// started, and the queue moves on to the other worker.
TEST_F(LeaseManagerTest, AWorkerLostMidBatchLosesEveryLeaseOfTheBatch) {
  for (int64_t attempt = 1; attempt <= 4; ++attempt) manager_.Submit(Task(attempt), sink_, 0, 1);
  auto lost = std::make_shared<FakeChannel>(/*batches=*/true);
  const std::string lost_id = Connect("lost", 3, lost);
  ASSERT_THAT(lost->Sent(), ElementsAre("registered " + lost_id, "leases 1 2 3"));
  manager_.Report(lost_id, Outcome(1, TaskReport::Outcome::kStarted));
  manager_.Disconnected(lost_id);
  std::map<int64_t, std::string> lost_reports;
  for (const TaskReport& report : sink_->Reports()) {
    if (report.outcome == TaskReport::Outcome::kLost)
      lost_reports[report.attempt_id] = report.message;
  }
  ASSERT_EQ(lost_reports.size(), 3u);
  EXPECT_EQ(lost_reports[1].find("before it started"), std::string::npos) << lost_reports[1];
  EXPECT_NE(lost_reports[2].find("before it started"), std::string::npos) << lost_reports[2];
  EXPECT_NE(lost_reports[3].find("before it started"), std::string::npos) << lost_reports[3];
  // A late report of the lost worker's lease is dropped.
  manager_.Report(lost_id, Outcome(2, TaskReport::Outcome::kSucceeded));
  for (const TaskReport& report : sink_->Reports()) {
    EXPECT_NE(report.outcome, TaskReport::Outcome::kSucceeded);
  }
  auto next = std::make_shared<FakeChannel>(/*batches=*/true);
  const std::string next_id = Connect("next", 2, next);
  EXPECT_THAT(next->Sent(), ElementsAre("registered " + next_id, "lease 4"));
}

TEST_F(LeaseManagerTest, AWorkerSilentForTheTimeoutIsCutAndItsAttemptsLost) {
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 2, channel);
  manager_.Submit(Task(1), sink_, 0, 1);
  manager_.Submit(Task(2), sink_, 0, 1);
  manager_.Report(id, Outcome(1, TaskReport::Outcome::kStarted));

  clock_.Advance(std::chrono::seconds(8));
  manager_.Heard(id);  // a heartbeat
  clock_.Advance(std::chrono::seconds(8));
  manager_.CheckLiveness();
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 1", "lease 2"));

  clock_.Advance(std::chrono::milliseconds(2001));
  manager_.CheckLiveness();
  manager_.CheckLiveness();  // closed once
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 1", "lease 2", "close"));
  manager_.Disconnected(id);  // the transport saw its connection end

  std::vector<TaskReport> reports = sink_->Reports();
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[1].outcome, TaskReport::Outcome::kLost);
  EXPECT_EQ(reports[1].worker_id, id);
  EXPECT_EQ(reports[1].message, "worker w1 was lost (no heartbeat in 10 s); running it again");
  EXPECT_EQ(reports[2].attempt_id, 2);
  EXPECT_EQ(reports[2].message,
            "worker w1 was lost (no heartbeat in 10 s) before it started this attempt; running it "
            "again");
  EXPECT_TRUE(manager_.Workers().empty());
}

TEST_F(LeaseManagerTest, ADisconnectedWorkersAttemptsAreLostAndTheQueueMovesOn) {
  auto first = std::make_shared<FakeChannel>();
  auto second = std::make_shared<FakeChannel>();
  const std::string a = Connect("a", 1, first);
  const std::string b = Connect("b", 1, second);
  manager_.Submit(Task(1), sink_, 0, 1);
  manager_.Submit(Task(2), sink_, 0, 1);
  manager_.Submit(Task(3), sink_, 0, 1);  // waits: every slot taken
  EXPECT_THAT(manager_.WhyWaiting(3),
              testing::Optional(std::string("every worker that can run it is busy (2 of 2 "
                                            "connected)")));
  manager_.Disconnected(a);
  std::vector<TaskReport> reports = sink_->Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].attempt_id, 1);
  EXPECT_EQ(reports[0].outcome, TaskReport::Outcome::kLost);
  EXPECT_EQ(reports[0].message,
            "worker a disconnected (its connection to the server ended) before it started this "
            "attempt; running it again");
  // The engine launches a new attempt of the lost task; b takes the
  // queued one as soon as it has a slot.
  manager_.Submit(Task(4), sink_, 0, 1);
  manager_.Report(b, Outcome(2, TaskReport::Outcome::kSucceeded));
  EXPECT_THAT(second->Sent(), ElementsAre("registered " + b, "lease 2", "lease 3"));
  manager_.Report(b, Outcome(3, TaskReport::Outcome::kSucceeded));
  EXPECT_THAT(second->Sent(), ElementsAre("registered " + b, "lease 2", "lease 3", "lease 4"));
}

TEST_F(LeaseManagerTest, AWorkerThatComesBackIsANewIdentity) {
  auto old_channel = std::make_shared<FakeChannel>();
  const std::string old_id = Connect("w1", 1, old_channel);
  WorkerSpec twin;
  twin.name = "w1";
  absl::StatusOr<std::string> refused = manager_.Register(twin, std::make_shared<FakeChannel>());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(refused.status().message(), HasSubstr("a worker named w1 is connected already"));

  manager_.Submit(Task(1), sink_, 0, 1);
  manager_.Disconnected(old_id);  // killed -9, restarted
  auto new_channel = std::make_shared<FakeChannel>();
  const std::string new_id = Connect("w1", 1, new_channel);
  EXPECT_NE(new_id, old_id);
  manager_.Submit(Task(2), sink_, 0, 1);
  EXPECT_THAT(new_channel->Sent(), ElementsAre("registered " + new_id, "lease 2"));

  // The old identity's late report of attempt 1 (lost), or of attempt 2
  // (never its), counts for nothing; the new one's does.
  manager_.Report(old_id, Outcome(1, TaskReport::Outcome::kSucceeded));
  manager_.Report(old_id, Outcome(2, TaskReport::Outcome::kSucceeded));
  manager_.Heard(old_id);
  ASSERT_EQ(sink_->Reports().size(), 1u);  // attempt 1's kLost
  manager_.Report(new_id, Outcome(2, TaskReport::Outcome::kSucceeded));
  ASSERT_EQ(sink_->Reports().size(), 2u);
  EXPECT_EQ(sink_->Reports()[1].worker_id, new_id);
}

TEST_F(LeaseManagerTest, CancelsAQueuedAttemptHereAndALeasedOneOnItsWorker) {
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 1, channel);
  manager_.Submit(Task(1), sink_, 0, 1);
  manager_.Submit(Task(2), sink_, 0, 1);
  manager_.Cancel(2, false);
  manager_.Cancel(1, true);
  manager_.Cancel(99, true);  // unknown: nothing
  std::vector<TaskReport> reports = sink_->Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].attempt_id, 2);
  EXPECT_EQ(reports[0].outcome, TaskReport::Outcome::kCancelled);
  EXPECT_EQ(reports[0].message, "cancelled before a worker took it");
  EXPECT_THAT(channel->Sent(), ElementsAre("registered " + id, "lease 1", "cancel 1 kill"));
}

TEST_F(LeaseManagerTest, NodeCopiesDrawLeasesAndEvictionForgetsThem) {
  auto a_channel = std::make_shared<FakeChannel>();
  auto b_channel = std::make_shared<FakeChannel>();
  WorkerSpec spec;
  spec.slots = 1;
  spec.tiers = {{"nvme", "/nvme"}};
  spec.name = "a";
  const std::string a = manager_.Register(spec, a_channel).value();
  spec.name = "b";
  const std::string b = manager_.Register(spec, b_channel).value();
  TaskLaunch reader = Task(1);
  reader.stage_in = {{"nvme", "k", "/c", "h", 4096, false}};
  manager_.Submit(reader, sink_, 0, 1);  // a: the first of equals
  TaskReport started = Outcome(1, TaskReport::Outcome::kStarted);
  started.node_copies = {{"nvme", "k", "/nvme/k", 4096, false, 1, ""}};
  manager_.Report(a, started);
  manager_.Report(a, Outcome(1, TaskReport::Outcome::kSucceeded));

  manager_.Submit(Task(9), sink_, 0, 1);  // occupies a, whose slot is free again
  reader.attempt_id = 2;
  manager_.Submit(reader, sink_, 0, 1);  // a is busy: b
  manager_.Report(a, Outcome(9, TaskReport::Outcome::kSucceeded));
  manager_.Report(b, Outcome(2, TaskReport::Outcome::kSucceeded));
  reader.attempt_id = 3;
  manager_.Submit(reader, sink_, 0, 1);  // both free: a holds the bytes
  EXPECT_EQ(sink_->Reports()[0].message,
            "leased to a, which has the node tiers its inputs are copied to");
  EXPECT_THAT(a_channel->Sent(), ElementsAre("registered " + a, "lease 1", "lease 9", "lease 3"));
  manager_.Report(a, Outcome(3, TaskReport::Outcome::kStarted));
  EXPECT_EQ(sink_->Reports().back().message,
            "leased to a, whose node tiers hold 1 of the 1 artifacts it reads there (4 KiB)");
  manager_.Report(a, Outcome(3, TaskReport::Outcome::kSucceeded));

  manager_.EvictNodeCopy("a", "nvme", "k");
  manager_.EvictNodeCopy("gone", "nvme", "k");  // no such worker: nothing
  EXPECT_EQ(a_channel->Sent().back(), "evict nvme/k");
  reader.attempt_id = 4;
  manager_.Submit(reader, sink_, 0, 1);  // nothing held anywhere: a, the first of equals
  manager_.Report(a, Outcome(4, TaskReport::Outcome::kStarted));
  EXPECT_EQ(sink_->Reports().back().message,
            "leased to a, which has the node tiers its inputs are copied to");
}

TEST_F(LeaseManagerTest, AnExecutorsReportsReachItsCallbackInOrder) {
  auto channel = std::make_shared<FakeChannel>();
  const std::string id = Connect("w1", 2, channel);
  std::promise<std::vector<TaskReport::Outcome>> done;
  std::vector<TaskReport::Outcome> seen;
  std::unique_ptr<Executor> executor = manager_.MakeExecutor(
      [&](TaskReport report) {
        seen.push_back(report.outcome);
        if (seen.size() == 3) done.set_value(seen);
      },
      0, 1);
  executor->Launch(Task(1));
  executor->Launch(Task(2));
  manager_.Report(id, Outcome(1, TaskReport::Outcome::kStarted));
  manager_.Report(id, Outcome(1, TaskReport::Outcome::kFailed));
  executor->KillAll();  // only attempt 2 is still leased
  manager_.Report(id, Outcome(2, TaskReport::Outcome::kCancelled));
  std::future<std::vector<TaskReport::Outcome>> reports = done.get_future();
  ASSERT_EQ(reports.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_THAT(reports.get(),
              ElementsAre(TaskReport::Outcome::kStarted, TaskReport::Outcome::kFailed,
                          TaskReport::Outcome::kCancelled));
  EXPECT_THAT(channel->Sent(),
              ElementsAre("registered " + id, "lease 1", "lease 2", "cancel 2 kill"));
}

}  // namespace
}  // namespace tierflow::scheduler
