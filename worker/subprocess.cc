#include "worker/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "common/strings.h"

extern char** environ;

namespace tierflow::worker {
namespace {

ExitStatus Decode(int wait_status) {
  ExitStatus status;
  if (WIFEXITED(wait_status)) status.exit_code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) status.signal = WTERMSIG(wait_status);
  return status;
}

// The parent's environment with `overrides` applied, as "K=V" strings.
std::vector<std::string> MergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::map<std::string, std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view kv(*entry);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [key, value] : overrides) merged[key] = value;
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [key, value] : merged) out.push_back(StrCat(key, "=", value));
  return out;
}

// The program `name` names, found as execvp would: itself when it holds a
// '/', else the first executable `dir/name` along `path` (the child's PATH,
// which a task may set). Lookups are remembered per (PATH, name): a long
// PATH would otherwise cost a failed exec per entry for every task. "" when
// there is none.
std::string FindProgram(const std::string& name, std::string_view path) {
  if (name.find('/') != std::string::npos) return name;
  static std::mutex mu;
  static std::map<std::pair<std::string, std::string>, std::string> found;
  std::pair<std::string, std::string> key(std::string(path), name);
  {
    std::lock_guard lock(mu);
    if (auto it = found.find(key); it != found.end()) return it->second;
  }
  std::string program;
  for (std::string_view rest = path;;) {
    const size_t colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    std::string candidate = StrCat(dir.empty() ? "." : dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) {
      program = std::move(candidate);
      break;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  // Only hits are kept: a program installed meanwhile is found next time.
  if (!program.empty()) {
    std::lock_guard lock(mu);
    found.emplace(std::move(key), program);
  }
  return program;
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return name != nullptr ? StrCat("killed by SIG", name) : StrCat("killed by signal ", signal);
  }
  return StrCat("exit ", exit_code);
}

absl::StatusOr<Subprocess> Subprocess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("empty command");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group (pgid = child pid); default signal dispositions.
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  constexpr int kFlags = O_WRONLY | O_CREAT | O_TRUNC;  // no O_CLOEXEC: the child keeps it
  if (options.output_fd >= 0) {
    // dup2 clears close-on-exec on the copies only.
    posix_spawn_file_actions_adddup2(&actions, options.output_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, options.output_fd, STDERR_FILENO);
  } else if (!options.stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.stdout_path.c_str(), kFlags,
                                     0644);
  }
  if (options.output_fd < 0 && !options.stderr_path.empty()) {
    if (options.stderr_path == options.stdout_path) {
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, options.stderr_path.c_str(), kFlags,
                                       0644);
    }
  }
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }

  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = MergedEnvironment(options.env);
  std::vector<char*> envp;
  std::string_view path = "/usr/local/bin:/usr/bin:/bin";  // execvp's default
  for (std::string& entry : env_strings) {
    envp.push_back(entry.data());
    if (std::string_view(entry).substr(0, 5) == "PATH=") path = std::string_view(entry).substr(5);
  }
  envp.push_back(nullptr);

  const std::string program = FindProgram(options.argv[0], path);
  if (program.empty()) {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return absl::FailedPreconditionError(StrCat("cannot start '", CEscape(options.argv[0]),
                                                "': no such program on PATH=", CEscape(path)));
  }
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot start '", CEscape(options.argv[0]), "': ", std::strerror(rc)));
  }
  return Subprocess(pid);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), reaped_(other.reaped_), status_(other.status_) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !reaped_) Terminate(std::chrono::milliseconds(0));
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = other.reaped_;
    status_ = other.status_;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) Terminate(std::chrono::milliseconds(0));
}

void Subprocess::SignalGroup(int signal) const {
  if (pid_ > 0) ::kill(-pid_, signal);
}

ExitStatus Subprocess::Wait() {
  while (!reaped_) {
    int wait_status = 0;
    pid_t rc = ::waitpid(pid_, &wait_status, 0);
    if (rc == pid_) {
      status_ = Decode(wait_status);
      reaped_ = true;
    } else if (rc < 0 && errno != EINTR) {
      reaped_ = true;  // not our child any more; nothing left to wait for
    }
  }
  return status_;
}

bool Subprocess::TryWait(ExitStatus* status) {
  if (!reaped_) {
    int wait_status = 0;
    pid_t rc = ::waitpid(pid_, &wait_status, WNOHANG);
    if (rc == pid_) {
      status_ = Decode(wait_status);
      reaped_ = true;
    } else if (rc < 0 && errno != EINTR) {
      reaped_ = true;
    }
  }
  if (reaped_ && status != nullptr) *status = status_;
  return reaped_;
}

ExitStatus Subprocess::Terminate(std::chrono::milliseconds grace) {
  SignalGroup(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  ExitStatus status;
  while (!TryWait(&status) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The group may outlive its leader (background children): KILL it anyway.
  SignalGroup(SIGKILL);
  return Wait();
}

}  // namespace tierflow::worker
