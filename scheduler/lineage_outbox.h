// The OpenLineage outbox (store table lineage_outbox, schema 16): events
// rendered in the transaction of the state change they describe, then sent
// in seq order by the one process that holds the sender's lease
// (api/lineage_sender.h). docs/lineage-export.md, "Delivery: the outbox".
//
// OutboxQueue is RunWriter's: the subjects of a transaction's state changes,
// rendered and inserted at its Commit, before COMMIT. The free functions are
// the sender's SQL. Thread-safety: none; each caller uses its own Database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/lineage_events.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::lineage {

class OutboxQueue {
 public:
  explicit OutboxQueue(ExportSettings settings) : settings_(std::move(settings)) {}
  void Add(EventSubject subject) { queued_.push_back(std::move(subject)); }
  // A new transaction: what an earlier, rolled back one queued is dropped.
  void Clear() { queued_.clear(); }
  // Renders every queued subject from what the open transaction holds and
  // inserts it, in order; then the queue is empty.
  absl::Status Flush(Database& db);

 private:
  ExportSettings settings_;
  std::vector<EventSubject> queued_;
  std::optional<Statement> insert_;  // prepared at the first Flush, on its Database
};

enum class OutboxState { kPending, kDelivered, kRejected };

struct OutboxRow {
  int64_t seq = 0;
  std::string run_id;
  std::optional<int64_t> attempt_id;
  std::string event_type;
  int64_t event_ms = 0;
  std::string body;
  int64_t tries = 0;
  int64_t next_try_at = 0;
  std::string answer;  // a rejection's
};

// Appends one rendered event (the caller holds the write transaction).
absl::Status Enqueue(Database& db, const EventSubject& subject, const std::string& body);

// The oldest pending event (the next to send, whatever its next_try_at:
// delivery never skips ahead), or none.
absl::StatusOr<std::optional<OutboxRow>> NextPending(Database& db);
// The `limit` oldest pending events, in seq order (the sender's next batch).
absl::StatusOr<std::vector<OutboxRow>> PendingBatch(Database& db, int limit);
absl::StatusOr<int64_t> CountPending(Database& db);
// 2xx: delivered at `now`; with `keep_delivered` false the row is deleted.
absl::Status MarkDelivered(Database& db, int64_t seq, int64_t now, bool keep_delivered);
// A 4xx: parked with the endpoint's answer; the next event goes on.
absl::Status ParkRejected(Database& db, int64_t seq, const std::string& answer);
// A failed try: tried again at `next_try_at`, the answer kept for show.
absl::Status RetryLater(Database& db, int64_t seq, int64_t next_try_at, const std::string& answer);
// What became of a batch of events sent in seq order, recorded in one
// transaction (RecordDeliveries): the sender marks a batch at once rather
// than one write transaction per event.
struct Deliveries {
  std::vector<int64_t> delivered;                         // 2xx
  std::vector<std::pair<int64_t, std::string>> rejected;  // 4xx: seq, the answer
  struct Retry {
    int64_t seq = 0;
    int64_t next_try_at = 0;
    std::string answer;
  };
  std::optional<Retry> retry;  // the event that failed; the batch stopped there
  bool empty() const { return delivered.empty() && rejected.empty() && !retry; }
};
// MarkDelivered, ParkRejected and RetryLater of a whole batch in one write
// transaction (Transaction::BeginWrite, waiting out a busy engine).
absl::Status RecordDeliveries(Database& db, const Deliveries& deliveries, int64_t now,
                              bool keep_delivered);
// Deletes delivered rows delivered before `before`. Returns how many.
absl::StatusOr<int64_t> PruneDelivered(Database& db, int64_t before);
// The parked events, oldest first.
absl::StatusOr<std::vector<OutboxRow>> ListRejected(Database& db);

// The sender's lease: true when `owner` holds it until now + ttl_ms (it was
// free, expired, already its own, or `dead_owner`'s). One sender per store.
absl::StatusOr<bool> TakeSenderLease(Database& db, const std::string& owner, int64_t now,
                                     int64_t ttl_ms, const std::string& dead_owner = "");
// Who holds the lease ("" when nobody does).
absl::StatusOr<std::string> SenderLeaseOwner(Database& db);
// Lets it go at once (best effort), so another process need not wait out the ttl.
void ReleaseSenderLease(Database& db, const std::string& owner);

}  // namespace tierflow::scheduler::lineage
