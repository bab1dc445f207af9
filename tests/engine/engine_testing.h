// Helpers shared by the engine's integration tests (engine_test.cc, engine_lineage_test.cc,
// crash_resume_test.cc, data_movement_test.cc, engine_faults_test.cc):
// temporary folders, files, SQLite queries against the store, checks on
// real processes by pid, and posix tiers for placement. Test-only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/placement.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::testing {

namespace fs = std::filesystem;

// A fresh folder under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                          "/tierflow-engine-test.XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) != nullptr) path_ = fs::canonical(buffer.data());
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Lines of a text file, without their newlines.
inline std::vector<std::string> ReadLines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

using Row = std::vector<std::string>;

// Runs `sql` on the store at `db_path` (read-only) and returns every row,
// each column as text ("NULL" for NULL). An unreadable store or a bad query
// comes back as one row holding the error, which no assertion will match.
inline std::vector<Row> Query(const std::string& db_path, const std::string& sql) {
  absl::StatusOr<std::unique_ptr<scheduler::Database>> db = scheduler::OpenStoreReadOnly(db_path);
  if (!db.ok()) return {{std::string("ERROR: ") + std::string(db.status().message())}};
  // The raw C API for the column count the Statement wrapper does not expose.
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2((*db)->handle(), sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
    return {{std::string("ERROR: ") + sqlite3_errmsg((*db)->handle())}};
  }
  std::vector<Row> rows;
  const int columns = sqlite3_column_count(statement);
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    Row row;
    for (int c = 0; c < columns; ++c) {
      const unsigned char* text = sqlite3_column_text(statement, c);
      row.push_back(text == nullptr ? "NULL" : reinterpret_cast<const char*>(text));
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) rows = {{std::string("ERROR: ") + sqlite3_errmsg((*db)->handle())}};
  sqlite3_finalize(statement);
  return rows;
}

// The single value of a one-row, one-column query ("" when there is none).
inline std::string QueryValue(const std::string& db_path, const std::string& sql) {
  std::vector<Row> rows = Query(db_path, sql);
  return rows.empty() || rows[0].empty() ? "" : rows[0][0];
}

// Waits until `condition` holds, checking every 20 ms, for at most `limit`
// (hang detection only: tests wait on what they can observe). True when it
// held.
inline bool WaitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// True when no process `pid` runs any more: it does not exist, or it is a
// zombie that only waits for its (new) parent to reap it. A killed task's
// orphaned children are reparented to init, which may reap them late.
inline bool ProcessGone(pid_t pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  size_t close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() &&
         (stat[close_paren + 2] == 'Z' || stat[close_paren + 2] == 'X');
}

inline pid_t ReadPid(const fs::path& path) {
  std::string text = ReadFile(path);
  return text.empty() ? 0 : static_cast<pid_t>(std::atol(text.c_str()));
}

// Pids of the processes whose environment holds `variable` (NAME=VALUE):
// how the tests find, and clean up, everything a test started.
inline std::vector<pid_t> ProcessesWithEnv(const std::string& variable) {
  std::vector<pid_t> pids;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (pid == getpid()) continue;
    std::ifstream environ(entry.path() / "environ", std::ios::binary);
    for (std::string item; std::getline(environ, item, '\0');) {
      if (item == variable) {
        pids.push_back(pid);
        break;
      }
    }
  }
  return pids;
}

// A posix tier `name` rooted at roots/name, on this node, with a declared
// profile, as placement takes it.
inline scheduler::PlacementTier PosixTier(const fs::path& roots, std::string name,
                                          Durability durability, storage::TierProfile profile) {
  scheduler::PlacementTier tier;
  tier.config.name = std::move(name);
  tier.config.adapter = "posix";
  tier.config.root = (roots / tier.config.name).string();
  tier.config.durability = durability;
  tier.config.scope = storage::Scope::kNode;
  tier.profile = profile;
  tier.profile_source = "declared";
  return tier;
}

// The data-movement tests' three tiers under `roots`: ram (volatile,
// fastest), disk (node) and bulk (durable, slowest).
inline std::vector<scheduler::PlacementTier> RamDiskBulkTiers(const fs::path& roots) {
  return {PosixTier(roots, "ram", Durability::kVolatile, {5000, 3000, 200000, 5}),
          PosixTier(roots, "disk", Durability::kNode, {1500, 1200, 20000, 80}),
          PosixTier(roots, "bulk", Durability::kDurable, {200, 200, 100, 20000})};
}

}  // namespace tierflow::testing
