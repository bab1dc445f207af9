// Live updates for /api/v1/events (Server-Sent Events), read from the state
// store through scheduler/api_queries.h. EventFeed's methods are safe from
// any thread; its polling thread owns the store connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/api_queries.h"

namespace tierflow::api {

// Live updates for /api/v1/events (Server-Sent Events): one thread per
// server polls the store's events table a few times a second (and the
// task states of running runs, for the `queued` state, which has no event
// row) and keeps the newest events in memory for every subscriber.
struct FeedEvent {
  std::optional<int64_t> id;  // events.id when the event is a row of the table
  std::string type;           // "run" | "task"
  std::string data;           // one line of JSON
};

class EventFeed {
 public:
  EventFeed(std::string db_path, std::chrono::milliseconds interval);
  ~EventFeed();
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  // The position of the next event to come.
  uint64_t End() const;
  // The events at `*position` and after, waiting up to `wait` for one;
  // moves `*position` past them. Empty after a timeout or once stopped.
  std::vector<FeedEvent> Wait(uint64_t* position, std::chrono::milliseconds wait);
  // Rows of the events table after `after` (a Last-Event-ID), at most
  // `limit`, rendered as the feed renders them.
  absl::StatusOr<std::vector<FeedEvent>> Since(int64_t after, size_t limit) const;
  void Stop();
  bool stopped() const;

 private:
  void Loop();

  const std::string db_path_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<FeedEvent> events_;  // guarded by mu_
  uint64_t first_ = 0;            // position of events_.front(); guarded by mu_
  bool stop_ = false;             // guarded by mu_
  // Owned by the polling thread.
  int64_t last_id_ = -1;  // -1: not read yet (the first poll starts at the newest row)
  scheduler::RunningTaskStates task_states_;  // of running runs
  std::thread thread_;
};

}  // namespace tierflow::api
