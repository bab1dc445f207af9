#include "api/lineage_sender.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/lineage_outbox.h"
#include "scheduler/run_lock.h"
#include "scheduler/store.h"
#include "storage_adapters/curl_library.h"

namespace tierflow::api {
namespace {

namespace lineage = scheduler::lineage;
using std::chrono::milliseconds;

constexpr int64_t kLeaseMs = 30'000;       // a dead sender's lease expires after this
constexpr int64_t kLeaseRenewMs = 5'000;   // renewed this often while it runs
constexpr int64_t kIdlePollMs = 100;       // an empty outbox is looked at again after this
constexpr int64_t kPruneEveryMs = 60'000;  // delivered rows past the retention
constexpr long kPostTimeoutMs = 10'000;    // one POST, answer included
constexpr size_t kAnswerBytes = 4096;      // kept of a rejection's answer
// Events sent between two records of what became of them: one write
// transaction per batch instead of one per event (it competes with the
// engine's for the store's write lock), at the price of resending at most
// one batch after a kill.
constexpr int kBatchEvents = 64;
constexpr int64_t kBatchMs = 250;

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

std::optional<int64_t> ParseCount(std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// One POST's outcome: the HTTP status (0: no answer) and what came back.
struct Answer {
  long status = 0;
  std::string text;  // the body, or curl's error without an answer
};

size_t KeepBody(char* data, size_t size, size_t count, void* out) {
  auto* text = static_cast<std::string*>(out);
  const size_t bytes = size * count;
  text->append(data, std::min(bytes, kAnswerBytes - std::min(kAnswerBytes, text->size())));
  return bytes;
}

// The status line of each response ("HTTP/1.1 201 Created"); the last wins
// (after a 100 Continue).
size_t KeepStatus(char* data, size_t size, size_t count, void* out) {
  const std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    const size_t space = line.find(' ');
    if (space != std::string_view::npos && line.size() >= space + 4) {
      int64_t code = 0;
      std::from_chars(line.data() + space + 1, line.data() + space + 4, code);
      *static_cast<long*>(out) = static_cast<long>(code);
    }
  }
  return size * count;
}

// An owner (HOST:PID:RANDOM) on this host that is no longer a live tierflow
// process (scheduler::EngineAlive, as `tierflow runs` tells a gone engine).
bool DeadHereOwner(const std::string& owner) {
  const std::string here = HostName();
  if (!owner.starts_with(StrCat(here, ":"))) return false;
  const std::string_view rest = std::string_view(owner).substr(here.size() + 1);
  const std::optional<int64_t> pid = ParseCount(rest.substr(0, rest.find(':')));
  return pid && *pid > 0 && !scheduler::EngineAlive(*pid, here);
}

}  // namespace

absl::StatusOr<std::optional<LineageConfig>> LineageConfigFromEnv() {
  const char* url = Env("TIERFLOW_OPENLINEAGE_URL");
  if (url == nullptr) return std::nullopt;
  LineageConfig config;
  config.url = url;
  if (!config.url.starts_with("http://") && !config.url.starts_with("https://")) {
    return absl::InvalidArgumentError(
        StrCat("TIERFLOW_OPENLINEAGE_URL: '", config.url,
               "' is no http:// or https:// URL (Marquez: http://HOST:5000/api/v1/lineage)"));
  }
  if (const char* key = Env("TIERFLOW_OPENLINEAGE_API_KEY")) config.api_key = key;
  config.settings = scheduler::lineage::ExportSettingsFromEnvironment();
  if (const char* backoff = Env("TIERFLOW_OPENLINEAGE_BACKOFF")) {
    const std::string_view text(backoff);
    const size_t comma = text.find(',');
    std::optional<int64_t> low, high;
    if (comma != std::string_view::npos) {
      low = ParseCount(text.substr(0, comma));
      high = ParseCount(text.substr(comma + 1));
    }
    if (!low || !high || *low == 0 || *high < *low) {
      return absl::InvalidArgumentError(
          StrCat("TIERFLOW_OPENLINEAGE_BACKOFF: '", text,
                 "' is not MIN_MS,MAX_MS (milliseconds, 0 < MIN_MS <= MAX_MS)"));
    }
    config.backoff_min = milliseconds(*low);
    config.backoff_max = milliseconds(*high);
  }
  if (const char* retention = Env("TIERFLOW_OPENLINEAGE_RETENTION")) {
    std::optional<int64_t> seconds = ParseCount(retention);
    if (!seconds) {
      return absl::InvalidArgumentError(StrCat("TIERFLOW_OPENLINEAGE_RETENTION: '", retention,
                                               "' is not a number of seconds (0: delete when "
                                               "delivered)"));
    }
    config.retention = milliseconds(*seconds * 1000);
  }
  return config;
}

class LineageSender::Impl {
 public:
  Impl(std::string db_path, LineageConfig config)
      : db_path_(std::move(db_path)), config_(std::move(config)) {
    std::random_device seed;
    random_.seed(seed());
    owner_ = StrCat(HostName(), ":", getpid(), ":", random_() % 1'000'000);
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  absl::StatusOr<int64_t> Drain(milliseconds limit) {
    if (std::error_code error; !std::filesystem::exists(db_path_, error)) return 0;
    TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, scheduler::OpenStore(db_path_));
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      TF_ASSIGN_OR_RETURN(int64_t pending, lineage::CountPending(*db));
      if (pending == 0 || std::chrono::steady_clock::now() >= deadline) return pending;
      std::this_thread::sleep_for(milliseconds(kIdlePollMs / 2));
    }
  }

 private:
  // Waits `ms`, or less when stopping. Returns false when stopping.
  bool Wait(int64_t ms) {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, milliseconds(ms), [this] { return stopping_; });
    return !stopping_;
  }
  bool Stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  // Say what went wrong once per kind of trouble, not once per try.
  void Say(const std::string& what) {
    if (what == last_said_) return;
    last_said_ = what;
    std::cerr << "tierflow: lineage: " << what << '\n';
  }

  void Loop() {
    std::unique_ptr<scheduler::Database> db;
    int64_t lease_until = 0, next_prune = 0;
    while (!Stopping()) {
      if (db == nullptr) {
        // The run creates the store (atomically, by a link); the sender
        // never does, so as not to race it.
        if (std::error_code error; !std::filesystem::exists(db_path_, error)) {
          if (!Wait(kIdlePollMs)) break;
          continue;
        }
        absl::StatusOr<std::unique_ptr<scheduler::Database>> opened =
            scheduler::OpenStore(db_path_);
        if (!opened.ok()) {
          Say(StrCat("cannot open the store: ", opened.status().message()));
          if (!Wait(1000)) break;
          continue;
        }
        db = std::move(*opened);
      }
      absl::Status status = Step(*db, lease_until, next_prune);
      if (!status.ok()) {
        Say(std::string(status.message()));
        lease_until = 0;
        if (!Wait(1000)) break;
      }
    }
    if (db != nullptr && lease_until > 0) lineage::ReleaseSenderLease(*db, owner_);
    if (handle_ != nullptr) (*storage::LoadCurl())->easy_cleanup(handle_);
  }

  // One look at the outbox: the lease, then the next event, sent or waited for.
  absl::Status Step(scheduler::Database& db, int64_t& lease_until, int64_t& next_prune) {
    int64_t now = WallClockMs();
    if (now > lease_until - kLeaseMs + kLeaseRenewMs) {
      TF_ASSIGN_OR_RETURN(bool held, lineage::TakeSenderLease(db, owner_, now, kLeaseMs));
      if (!held) {
        // A holder on this host whose process is gone (a killed `run`
        // before its `run --resume`) need not be waited out.
        TF_ASSIGN_OR_RETURN(std::string holder, lineage::SenderLeaseOwner(db));
        if (DeadHereOwner(holder)) {
          TF_ASSIGN_OR_RETURN(held, lineage::TakeSenderLease(db, owner_, now, kLeaseMs, holder));
        }
      }
      if (!held) {
        // Another process sends; look again in a while (it may die).
        lease_until = 0;
        Wait(1000);
        return absl::OkStatus();
      }
      lease_until = now + kLeaseMs;
    }
    if (now >= next_prune && config_.retention.count() > 0) {
      TF_RETURN_IF_ERROR(lineage::PruneDelivered(db, now - config_.retention.count()).status());
      next_prune = now + kPruneEveryMs;
    }
    TF_ASSIGN_OR_RETURN(std::vector<lineage::OutboxRow> batch,
                        lineage::PendingBatch(db, kBatchEvents));
    if (batch.empty()) {
      Wait(kIdlePollMs);
      return absl::OkStatus();
    }
    if (batch.front().next_try_at > now) {
      Wait(std::min<int64_t>(batch.front().next_try_at - now, 1000));
      return absl::OkStatus();
    }
    // Sent one by one, in order, on the kept-alive connection; recorded in
    // one transaction at the end of the batch. A kill before that records
    // sends the batch's delivered events again (at least once; the window
    // is at most kBatchEvents events or kBatchMs).
    lineage::Deliveries deliveries;
    const int64_t batch_end = now + kBatchMs;
    for (const lineage::OutboxRow& row : batch) {
      if (Stopping() || WallClockMs() >= batch_end) break;
      const Answer answer = Post(row.body);
      if (answer.status >= 200 && answer.status < 300) {
        last_said_.clear();
        deliveries.delivered.push_back(row.seq);
        continue;
      }
      const std::string what =
          answer.status == 0 ? answer.text : StrCat("HTTP ", answer.status, ": ", answer.text);
      if (answer.status >= 400 && answer.status < 500 && answer.status != 408 &&
          answer.status != 429) {
        Say(StrCat("event ", row.seq, " (", row.event_type, " of ", row.run_id,
                   ") rejected by the endpoint, parked: ", what));
        deliveries.rejected.emplace_back(row.seq, what);
        continue;
      }
      Say(StrCat("cannot deliver to ", config_.url, " (", what, "); retrying"));
      deliveries.retry = lineage::Deliveries::Retry{
          .seq = row.seq, .next_try_at = WallClockMs() + RetryDelay(row.tries + 1), .answer = what};
      break;
    }
    return lineage::RecordDeliveries(db, deliveries, WallClockMs(), config_.retention.count() > 0);
  }

  // Equal jitter, as the engine's task retries: spread the senders of a
  // recovering endpoint instead of hammering it.
  int64_t RetryDelay(int64_t tries) {
    double base = static_cast<double>(config_.backoff_min.count()) *
                  std::pow(2.0, static_cast<double>(std::min<int64_t>(tries - 1, 40)));
    base = std::min(base, static_cast<double>(config_.backoff_max.count()));
    std::uniform_real_distribution<double> uniform(0, 1);
    return static_cast<int64_t>(base / 2 + uniform(random_) * base / 2);
  }

  Answer Post(const std::string& body) {
    Answer answer;
    absl::StatusOr<const storage::CurlLibrary*> loaded = storage::LoadCurl();
    if (!loaded.ok()) {
      answer.text = std::string(loaded.status().message());
      return answer;
    }
    const storage::CurlLibrary& curl = **loaded;
    // One handle for the sender's life: its connection is kept alive
    // between events.
    if (handle_ == nullptr) handle_ = curl.easy_init();
    CURL* handle = handle_;
    if (handle == nullptr) {
      answer.text = "libcurl: no handle";
      return answer;
    }
    curl.easy_reset(handle);
    curl_slist* headers = curl.slist_append(nullptr, "Content-Type: application/json");
    if (!config_.api_key.empty()) {
      headers =
          curl.slist_append(headers, StrCat("Authorization: Bearer ", config_.api_key).c_str());
    }
    char error[CURL_ERROR_SIZE] = "";
    curl.easy_setopt(handle, CURLOPT_URL, config_.url.c_str());
    curl.easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    curl.easy_setopt(handle, CURLOPT_POST, 1L);
    curl.easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
    curl.easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl.easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl.easy_setopt(handle, CURLOPT_USERAGENT, "tierflow");
    curl.easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
    curl.easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl.easy_setopt(handle, CURLOPT_TIMEOUT_MS, kPostTimeoutMs);
    curl.easy_setopt(handle, CURLOPT_WRITEFUNCTION, KeepBody);
    curl.easy_setopt(handle, CURLOPT_WRITEDATA, &answer.text);
    curl.easy_setopt(handle, CURLOPT_HEADERFUNCTION, KeepStatus);
    curl.easy_setopt(handle, CURLOPT_HEADERDATA, &answer.status);
    const CURLcode code = curl.easy_perform(handle);
    if (code != CURLE_OK) {
      answer.status = 0;
      answer.text = *error != '\0' ? error : curl.easy_strerror(code);
    }
    curl.slist_free_all(headers);
    return answer;
  }

  const std::string db_path_;
  const LineageConfig config_;
  std::mt19937_64 random_;
  std::string owner_;
  std::string last_said_;   // the sender thread's
  CURL* handle_ = nullptr;  // the sender thread's
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

LineageSender::LineageSender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LineageSender::~LineageSender() = default;

std::unique_ptr<LineageSender> LineageSender::Start(std::string db_path, LineageConfig config) {
  return std::unique_ptr<LineageSender>(
      new LineageSender(std::make_unique<Impl>(std::move(db_path), std::move(config))));
}

absl::StatusOr<int64_t> LineageSender::Drain(milliseconds limit) { return impl_->Drain(limit); }

absl::StatusOr<std::unique_ptr<LineageSender>> StartLineageDelivery(
    const std::string& db_path, scheduler::EngineOptions* engine_options) {
  TF_ASSIGN_OR_RETURN(std::optional<LineageConfig> config, LineageConfigFromEnv());
  if (!config) return nullptr;
  if (engine_options != nullptr) engine_options->lineage_outbox = config->settings;
  return LineageSender::Start(db_path, std::move(*config));
}

std::string FinishLineageDelivery(std::unique_ptr<LineageSender> sender) {
  if (sender == nullptr) return "";
  int64_t seconds = 10;
  if (const char* text = Env("TIERFLOW_OPENLINEAGE_DRAIN_SECONDS")) {
    seconds = ParseCount(text).value_or(seconds);
  }
  absl::StatusOr<int64_t> waiting = sender->Drain(milliseconds(seconds * 1000));
  sender.reset();
  if (!waiting.ok()) return StrCat("lineage: ", waiting.status().message());
  if (*waiting == 0) return "";
  return StrCat("lineage: ", *waiting, " OpenLineage event", *waiting == 1 ? "" : "s",
                " wait in the store's outbox for the next tierflow process with "
                "TIERFLOW_OPENLINEAGE_URL set");
}

absl::StatusOr<std::vector<lineage::OutboxRow>> RejectedLineageEvents(const std::string& db_path) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db,
                      scheduler::OpenStoreReadOnly(db_path));
  return lineage::ListRejected(*db);
}

}  // namespace tierflow::api
