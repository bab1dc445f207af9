// EventFeed (api/event_feed.h): one polling thread reads new rows of the
// events table, and the task states of running runs (a task turning
// `queued` writes no event row), through scheduler/api_queries.h, renders
// them as the UI's JSON and keeps the newest in memory for every
// subscriber.
#include "api/event_feed.h"

#include <memory>
#include <set>
#include <utility>

#include "api/internal/http_json.h"
#include "common/status.h"
#include "common/units.h"
#include "scheduler/run_queries.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

using scheduler::Database;
using scheduler::EventRow;
using scheduler::TaskState;

FeedEvent RenderEventRow(Database& db, const EventRow& row) {
  FeedEvent event;
  event.id = row.id;
  const bool task = !row.task_id.empty();
  Json data{{"id", row.id},
            {"run_id", row.run_id},
            {"task_id", task ? Json(row.task_id) : Json(nullptr)},
            {"attempt_id", OptionalJson(row.attempt_id)},
            {"time_ms", row.time_ms},
            {"kind", row.kind},
            {"message", row.message}};
  if (task) {
    event.type = "task";
    // A task event's kind is the state it entered, or what happened to it.
    data["state"] = scheduler::ParseTaskState(row.kind).ok() ? Json(row.kind) : Json(nullptr);
  } else {
    event.type = "run";
    absl::StatusOr<scheduler::RunSummary> summary =
        scheduler::GetRunSummary(db, row.run_id, WallClockMs());
    data["run"] = summary.ok() ? RunSummaryJson(*summary) : Json(nullptr);
  }
  event.data = HtmlSafeJson(DumpJson(data));
  return event;
}

constexpr size_t kFeedMemory = 4096;  // events kept for subscribers that fall behind
constexpr int64_t kPollBatch = 1000;  // rows read per poll at most

}  // namespace

EventFeed::EventFeed(std::string db_path, std::chrono::milliseconds interval)
    : db_path_(std::move(db_path)), interval_(interval), thread_([this] { Loop(); }) {}

EventFeed::~EventFeed() {
  Stop();
  thread_.join();
}

void EventFeed::Stop() {
  std::lock_guard lock(mu_);
  stop_ = true;
  changed_.notify_all();
}

bool EventFeed::stopped() const {
  std::lock_guard lock(mu_);
  return stop_;
}

uint64_t EventFeed::End() const {
  std::lock_guard lock(mu_);
  return first_ + events_.size();
}

std::vector<FeedEvent> EventFeed::Wait(uint64_t* position, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, wait, [&] { return stop_ || first_ + events_.size() > *position; });
  std::vector<FeedEvent> events;
  if (stop_) return events;
  if (*position < first_) *position = first_;  // fell behind: what was dropped is gone
  for (uint64_t i = *position - first_; i < events_.size(); ++i) events.push_back(events_[i]);
  *position = first_ + events_.size();
  return events;
}

absl::StatusOr<std::vector<FeedEvent>> EventFeed::Since(int64_t after, size_t limit) const {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, scheduler::OpenStoreReadOnly(db_path_));
  TF_ASSIGN_OR_RETURN(std::vector<EventRow> rows,
                      scheduler::ListEventsAfter(*db, after, static_cast<int64_t>(limit)));
  std::vector<FeedEvent> events;
  for (const EventRow& row : rows) events.push_back(RenderEventRow(*db, row));
  return events;
}

void EventFeed::Loop() {
  std::unique_ptr<Database> db;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (changed_.wait_for(lock, interval_, [&] { return stop_; })) return;
    }
    if (!db) {
      absl::StatusOr<std::unique_ptr<Database>> opened = scheduler::OpenStoreReadOnly(db_path_);
      if (!opened.ok()) continue;  // not there yet: a server makes it with its first run
      db = std::move(*opened);
    }
    std::vector<FeedEvent> fresh;
    absl::Status status = [&]() -> absl::Status {
      const bool first = last_id_ < 0;
      if (first) {
        TF_ASSIGN_OR_RETURN(last_id_, scheduler::LatestEventId(*db));
      }
      std::set<std::string> touched;    // runs whose tasks changed
      std::set<std::string> announced;  // runs with a run event in this batch
      TF_ASSIGN_OR_RETURN(std::vector<EventRow> rows,
                          scheduler::ListEventsAfter(*db, last_id_, kPollBatch));
      for (const EventRow& row : rows) {
        last_id_ = row.id;
        FeedEvent event = RenderEventRow(*db, row);
        (event.type == "run" ? announced : touched).insert(row.run_id);
        fresh.push_back(std::move(event));
      }
      // `queued` has no event row (the engine writes only the task row), so
      // the task states of running runs are compared with the last poll.
      TF_ASSIGN_OR_RETURN(scheduler::RunningTaskStates states,
                          scheduler::ListRunningTaskStates(*db));
      for (const auto& [run_id, tasks] : states) {
        auto before = task_states_.find(run_id);
        for (const auto& [task_id, state] : tasks) {
          if (first || state != TaskState::kQueued) continue;
          if (before != task_states_.end()) {
            auto was = before->second.find(task_id);
            if (was != before->second.end() && was->second == state) continue;
          }
          const std::string word(scheduler::TaskStateName(state));
          fresh.push_back(FeedEvent{std::nullopt, "task",
                                    HtmlSafeJson(DumpJson(Json{{"id", nullptr},
                                                               {"run_id", run_id},
                                                               {"task_id", task_id},
                                                               {"attempt_id", nullptr},
                                                               {"time_ms", WallClockMs()},
                                                               {"kind", word},
                                                               {"message", ""},
                                                               {"state", word}}))});
          touched.insert(run_id);
        }
      }
      task_states_ = std::move(states);
      for (const std::string& run_id : touched) {
        if (announced.count(run_id) > 0) continue;
        absl::StatusOr<scheduler::RunSummary> summary =
            scheduler::GetRunSummary(*db, run_id, WallClockMs());
        if (!summary.ok()) continue;
        fresh.push_back(FeedEvent{std::nullopt, "run",
                                  HtmlSafeJson(DumpJson(Json{{"id", nullptr},
                                                             {"run_id", run_id},
                                                             {"task_id", nullptr},
                                                             {"time_ms", WallClockMs()},
                                                             {"kind", "progress"},
                                                             {"message", ""},
                                                             {"run", RunSummaryJson(*summary)}}))});
      }
      return absl::OkStatus();
    }();
    if (!status.ok()) {
      db.reset();  // opened again at the next poll
      continue;
    }
    if (fresh.empty()) continue;
    std::lock_guard lock(mu_);
    for (FeedEvent& event : fresh) events_.push_back(std::move(event));
    while (events_.size() > kFeedMemory) {
      events_.pop_front();
      ++first_;
    }
    changed_.notify_all();
  }
}

}  // namespace tierflow::api
