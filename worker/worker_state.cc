#include "worker/worker_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/strings.h"

namespace tierflow::worker {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A worker name in a file name: letters, digits and . _ - : @ as they are,
// anything else (/ included) as %XX.
std::string FileNamePart(const std::string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Never hidden, never "." or "..": a leading '.' (kept as it is below)
  // or nothing at all gets a '%' in front.
  std::string out = text.empty() || text[0] == '.' ? "%" : "";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '.' || c == '_' || c == '-' || c == ':' || c == '@') {
      out.push_back(c);
    } else {
      out += {'%', kHex[byte >> 4], kHex[byte & 15]};
    }
  }
  return out;
}

}  // namespace

uint64_t ProcessStartTicks(pid_t pid) {
  std::ifstream in(StrCat("/proc/", static_cast<int64_t>(pid), "/stat"));
  std::string stat;
  if (!in || !std::getline(in, stat)) return 0;
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so
  // count fields from the last ')'. starttime is field 22; STATE is 3.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int index = 3; index <= 22; ++index) {
    if (!(fields >> field)) return 0;
  }
  try {
    return std::stoull(field);
  } catch (const std::exception&) {
    return 0;
  }
}

absl::StatusOr<std::unique_ptr<WorkerState>> WorkerState::Open(const std::string& state_dir,
                                                               const std::string& cluster_id,
                                                               const std::string& name) {
  std::error_code error;
  fs::create_directories(state_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        StrCat("worker state folder ", state_dir, ": cannot create it: ", error.message()));
  }
  fs::permissions(state_dir, fs::perms::owner_all, fs::perm_options::replace, error);
  const std::string base =
      (fs::path(state_dir) / StrCat(FileNamePart(cluster_id), ".", FileNamePart(name))).string();
  const std::string lock_path = base + ".lock";
  // Take the lock, then check the file locked is still the one at the path
  // (a worker that ended deletes it while holding it).
  for (;;) {
    const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          StrCat("worker state ", lock_path, ": ", std::strerror(errno)));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int why = errno;
      char holder[32] = {};
      (void)!pread(fd, holder, sizeof holder - 1, 0);
      close(fd);
      if (why == EWOULDBLOCK) {
        return absl::AlreadyExistsError(
            StrCat("a worker named ", name, " of this cluster runs on this host already (pid ",
                   std::string(TrimWhitespace(holder)), ", holding ", lock_path, ")"));
      }
      return absl::FailedPreconditionError(
          StrCat("worker state ", lock_path, ": flock: ", std::strerror(why)));
    }
    struct stat locked {};
    struct stat there {};
    if (fstat(fd, &locked) == 0 && stat(lock_path.c_str(), &there) == 0 &&
        locked.st_dev == there.st_dev && locked.st_ino == there.st_ino) {
      const std::string pid = StrCat(static_cast<int64_t>(getpid()), "\n");
      if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        // Only the message of a refused newcomer needs it.
      }
      auto state = std::unique_ptr<WorkerState>(new WorkerState(base + ".json", lock_path, fd));
      state->Load();
      return state;
    }
    close(fd);
  }
}

WorkerState::WorkerState(std::string path, std::string lock_path, int lock_fd)
    : path_(std::move(path)), lock_path_(std::move(lock_path)), lock_fd_(lock_fd) {}

WorkerState::~WorkerState() {
  if (lock_fd_ >= 0) close(lock_fd_);
}

void WorkerState::Load() {
  std::ifstream in(path_);
  if (!in) return;
  // Writes are renamed into place, so a crash leaves the old file or the
  // new one. One that is not ours to read is ignored: forgetting leftovers
  // is safer than guessing what they were.
  json state = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object()) return;
  std::lock_guard lock(mu_);
  if (state.contains("tasks") && state["tasks"].is_array()) {
    for (const json& task : state["tasks"]) {
      if (!task.is_object() || !task.value("attempt", json()).is_number_integer() ||
          !task.value("pgid", json()).is_number_integer() ||
          !task.value("start_ticks", json()).is_number_unsigned()) {
        continue;
      }
      Task record{task["attempt"].get<int64_t>(), task["pgid"].get<pid_t>(),
                  task["start_ticks"].get<uint64_t>()};
      if (record.pgid > 1) tasks_[record.attempt_id] = record;
    }
  }
  if (state.contains("node_folders") && state["node_folders"].is_array()) {
    for (const json& folder : state["node_folders"]) {
      if (!folder.is_object() || !folder.value("root", json()).is_string() ||
          !folder.value("key", json()).is_string()) {
        continue;
      }
      folders_.emplace(folder["root"].get<std::string>(), folder["key"].get<std::string>());
    }
  }
}

void WorkerState::Save() {
  std::error_code error;
  if (tasks_.empty() && folders_.empty()) {
    fs::remove(path_, error);  // nothing to find: no file (a worker killed idle leaves none)
    return;
  }
  json tasks = json::array();
  for (const auto& [attempt, task] : tasks_) {
    tasks.push_back(
        {{"attempt", task.attempt_id}, {"pgid", task.pgid}, {"start_ticks", task.start_ticks}});
  }
  json folders = json::array();
  for (const auto& [root, key] : folders_) folders.push_back({{"root", root}, {"key", key}});
  const std::string text = json{
      {"worker_pid", static_cast<int64_t>(getpid())},
      {"tasks", tasks},
      {"node_folders",
       folders}}.dump(1);
  const std::string temp = path_ + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text << '\n';
    if (!out) return;  // the record stays as it was; the task runs all the same
  }
  fs::rename(temp, path_, error);
}

std::vector<WorkerState::Task> WorkerState::Tasks() const {
  std::lock_guard lock(mu_);
  std::vector<Task> tasks;
  for (const auto& [attempt, task] : tasks_) tasks.push_back(task);
  return tasks;
}

std::vector<NodeFolder> WorkerState::Folders() const {
  std::lock_guard lock(mu_);
  std::vector<NodeFolder> folders;
  for (const auto& [root, key] : folders_) folders.push_back({root, key});
  return folders;
}

int WorkerState::KillRecordedTasks() {
  std::lock_guard lock(mu_);
  std::vector<pid_t> killed;
  for (const auto& [attempt, task] : tasks_) {
    const uint64_t ticks = ProcessStartTicks(task.pgid);
    // A leader alive with another start time: the pid went to a newer
    // process, so the recorded group is gone (its id could not be reused
    // while it existed).
    if (ticks != 0 && ticks != task.start_ticks) continue;
    if (::kill(-task.pgid, SIGKILL) == 0) killed.push_back(task.pgid);
  }
  // Gone before their folders are deleted (at most 2 s: a group whose
  // members are zombies nobody reaps is no longer writing anything).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline &&
         std::any_of(killed.begin(), killed.end(),
                     [](pid_t group) { return ::kill(-group, 0) == 0; })) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  tasks_.clear();
  Save();
  return static_cast<int>(killed.size());
}

void WorkerState::TaskStarted(int64_t attempt_id, pid_t pgid) {
  const uint64_t ticks = ProcessStartTicks(pgid);
  std::lock_guard lock(mu_);
  tasks_[attempt_id] = {attempt_id, pgid, ticks};
  Save();
}

void WorkerState::TaskEnded(int64_t attempt_id) {
  std::lock_guard lock(mu_);
  if (tasks_.erase(attempt_id) > 0) Save();
}

void WorkerState::FolderMade(const NodeFolder& folder) {
  std::lock_guard lock(mu_);
  if (folders_.emplace(folder.root, folder.key).second) Save();
}

void WorkerState::FolderGone(const NodeFolder& folder) {
  std::lock_guard lock(mu_);
  if (folders_.erase({folder.root, folder.key}) > 0) Save();
}

void WorkerState::ForgetFolders() {
  std::lock_guard lock(mu_);
  folders_.clear();
  Save();
}

void WorkerState::Remove() {
  std::lock_guard lock(mu_);
  tasks_.clear();
  folders_.clear();
  std::error_code error;
  fs::remove(path_, error);
  fs::remove(path_ + ".tmp", error);
  fs::remove(lock_path_, error);  // while still holding it: see Open
}

}  // namespace tierflow::worker
