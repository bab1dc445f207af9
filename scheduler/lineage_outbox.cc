#include "scheduler/lineage_outbox.h"

#include <random>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow::scheduler::lineage {
namespace {

OutboxRow ReadRow(const Statement& row) {
  OutboxRow out;
  out.seq = row.Int(0);
  out.run_id = row.Text(1);
  out.attempt_id = row.OptionalInt(2);
  out.event_type = row.Text(3);
  out.event_ms = row.Int(4);
  out.body = row.Text(5);
  out.tries = row.Int(6);
  out.next_try_at = row.Int(7);
  if (!row.IsNull(8)) out.answer = row.Text(8);
  return out;
}

constexpr std::string_view kColumns =
    "seq, run_id, attempt_id, event_type, event_ms, body, tries, next_try_at, answer";

// The rows in `state` (a literal: the partial indexes lineage_outbox_pending
// and _rejected serve only a query that names it), oldest first; at most
// `limit` of them (-1: all).
absl::StatusOr<std::vector<OutboxRow>> RowsInState(Database& db, std::string_view state,
                                                   int64_t limit) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare(StrCat("SELECT ", kColumns, " FROM lineage_outbox WHERE state = '",
                                        state, "' ORDER BY seq LIMIT ?")));
  find.Bind(1, limit);
  std::vector<OutboxRow> rows;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) break;
    rows.push_back(ReadRow(find));
  }
  return rows;
}

}  // namespace

constexpr std::string_view kInsert =
    "INSERT INTO lineage_outbox(run_id, attempt_id, event_type, event_ms, body) VALUES (?, ?, ?, "
    "?, ?)";

static absl::Status Insert(Statement& insert, const EventSubject& subject,
                           const std::string& body) {
  insert.Bind(1, subject.run_id)
      .Bind(2, subject.attempt_id)
      .Bind(3, EventTypeWord(subject.type))
      .Bind(4, subject.event_ms)
      .Bind(5, body);
  return insert.Run();
}

absl::Status OutboxQueue::Flush(Database& db) {
  std::vector<EventSubject> queued;
  queued.swap(queued_);
  if (queued.empty()) return absl::OkStatus();
  if (!insert_) {
    TF_ASSIGN_OR_RETURN(Statement insert, db.Prepare(kInsert));
    insert_.emplace(std::move(insert));
  }
  for (const EventSubject& subject : queued) {
    TF_ASSIGN_OR_RETURN(std::string body, RenderEvent(db, subject, settings_));
    TF_RETURN_IF_ERROR(Insert(*insert_, subject, body));
  }
  return absl::OkStatus();
}

absl::Status Enqueue(Database& db, const EventSubject& subject, const std::string& body) {
  TF_ASSIGN_OR_RETURN(Statement insert, db.Prepare(kInsert));
  return Insert(insert, subject, body);
}

absl::StatusOr<std::vector<OutboxRow>> PendingBatch(Database& db, int limit) {
  return RowsInState(db, "pending", limit);
}

absl::StatusOr<std::optional<OutboxRow>> NextPending(Database& db) {
  TF_ASSIGN_OR_RETURN(std::vector<OutboxRow> rows, PendingBatch(db, 1));
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

absl::StatusOr<int64_t> CountPending(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement count,
                      db.Prepare("SELECT count(*) FROM lineage_outbox WHERE state = 'pending'"));
  TF_ASSIGN_OR_RETURN(bool found, count.Step());
  return found ? count.Int(0) : 0;
}

absl::Status MarkDelivered(Database& db, int64_t seq, int64_t now, bool keep_delivered) {
  TF_ASSIGN_OR_RETURN(
      Statement mark,
      db.Prepare(keep_delivered ? "UPDATE lineage_outbox SET state = 'delivered', tries = tries "
                                  "+ 1, delivered_at = ?2, answer = NULL WHERE seq = ?1"
                                : "DELETE FROM lineage_outbox WHERE seq = ?1"));
  mark.Bind(1, seq);
  if (keep_delivered) mark.Bind(2, now);
  return mark.Run();
}

absl::Status ParkRejected(Database& db, int64_t seq, const std::string& answer) {
  TF_ASSIGN_OR_RETURN(Statement park,
                      db.Prepare("UPDATE lineage_outbox SET state = 'rejected', tries = tries + "
                                 "1, answer = ? WHERE seq = ?"));
  park.Bind(1, answer).Bind(2, seq);
  return park.Run();
}

absl::Status RetryLater(Database& db, int64_t seq, int64_t next_try_at, const std::string& answer) {
  TF_ASSIGN_OR_RETURN(Statement retry,
                      db.Prepare("UPDATE lineage_outbox SET tries = tries + 1, next_try_at = ?, "
                                 "answer = ? WHERE seq = ?"));
  retry.Bind(1, next_try_at).Bind(2, answer).Bind(3, seq);
  return retry.Run();
}

absl::Status RecordDeliveries(Database& db, const Deliveries& deliveries, int64_t now,
                              bool keep_delivered) {
  if (deliveries.empty()) return absl::OkStatus();
  std::minstd_rand random(static_cast<uint32_t>(now));
  TF_ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginWrite(db, [&random] {
                        return std::uniform_real_distribution<double>(0, 1)(random);
                      }));
  for (int64_t seq : deliveries.delivered) {
    TF_RETURN_IF_ERROR(MarkDelivered(db, seq, now, keep_delivered));
  }
  for (const auto& [seq, answer] : deliveries.rejected) {
    TF_RETURN_IF_ERROR(ParkRejected(db, seq, answer));
  }
  if (const auto& retry = deliveries.retry) {
    TF_RETURN_IF_ERROR(RetryLater(db, retry->seq, retry->next_try_at, retry->answer));
  }
  return transaction.Commit();
}

absl::StatusOr<int64_t> PruneDelivered(Database& db, int64_t before) {
  TF_ASSIGN_OR_RETURN(Statement prune,
                      db.Prepare("DELETE FROM lineage_outbox WHERE state = 'delivered' AND "
                                 "delivered_at < ?"));
  prune.Bind(1, before);
  TF_RETURN_IF_ERROR(prune.Run());
  return db.Changes();
}

absl::StatusOr<std::vector<OutboxRow>> ListRejected(Database& db) {
  return RowsInState(db, "rejected", -1);
}

absl::StatusOr<bool> TakeSenderLease(Database& db, const std::string& owner, int64_t now,
                                     int64_t ttl_ms, const std::string& dead_owner) {
  TF_ASSIGN_OR_RETURN(
      Statement take,
      db.Prepare("INSERT INTO lineage_sender_lease(id, owner, expires_at) VALUES (1, ?1, ?2) "
                 "ON CONFLICT(id) DO UPDATE SET owner = ?1, expires_at = ?2 WHERE "
                 "lineage_sender_lease.owner = ?1 OR lineage_sender_lease.expires_at < ?3 OR "
                 "lineage_sender_lease.owner = ?4"));
  take.Bind(1, owner).Bind(2, now + ttl_ms).Bind(3, now).Bind(4, dead_owner);
  TF_RETURN_IF_ERROR(take.Run());
  return db.Changes() > 0;
}

absl::StatusOr<std::string> SenderLeaseOwner(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT owner FROM lineage_sender_lease WHERE id = 1"));
  TF_ASSIGN_OR_RETURN(bool found, find.Step());
  return found ? find.Text(0) : std::string();
}

void ReleaseSenderLease(Database& db, const std::string& owner) {
  absl::StatusOr<Statement> release =
      db.Prepare("DELETE FROM lineage_sender_lease WHERE id = 1 AND owner = ?");
  if (!release.ok()) return;
  release->Bind(1, owner);
  (void)release->Run();
}

}  // namespace tierflow::scheduler::lineage
