#include "worker/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include "common/strings.h"

extern char** environ;

namespace tierflow::worker {
namespace {

std::string_view Key(std::string_view entry) { return entry.substr(0, entry.find('=')); }

ExitStatus Decode(int wait_status) {
  ExitStatus status;
  if (WIFEXITED(wait_status)) status.exit_code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) status.signal = WTERMSIG(wait_status);
  return status;
}

// The parent's environment ("K=V" strings sorted by key, the first of
// repeated keys kept, as getenv finds it), sorted again only when environ
// changed since the last spawn (setenv replaces an entry's pointer).
std::shared_ptr<const std::vector<std::string>> ParentEnvironment() {
  static std::mutex mu;
  static std::vector<const char*> seen;
  static std::shared_ptr<const std::vector<std::string>> current;
  std::lock_guard lock(mu);
  size_t n = 0;
  bool same = true;
  for (char** entry = environ; *entry != nullptr; ++entry, ++n) {
    same = same && n < seen.size() && seen[n] == *entry;
  }
  if (!same || n != seen.size() || current == nullptr) {
    seen.assign(environ, environ + n);
    auto sorted = std::make_shared<std::vector<std::string>>();
    for (const char* entry : seen) {
      if (std::strchr(entry, '=') != nullptr) sorted->emplace_back(entry);
    }
    std::stable_sort(sorted->begin(), sorted->end(),
                     [](const std::string& a, const std::string& b) { return Key(a) < Key(b); });
    sorted->erase(
        std::unique(sorted->begin(), sorted->end(),
                    [](const std::string& a, const std::string& b) { return Key(a) == Key(b); }),
        sorted->end());
    current = std::move(sorted);
  }
  return current;
}

// PWD as a shell would set it in `working_dir` (empty: this process's):
// the directory as named, when absolute, else the inherited PWD when it
// names the same directory, else the physical path. A command run directly
// then sees the PWD it would see run through /bin/sh -c.
std::string ChildPwd(const std::string& working_dir) {
  if (!working_dir.empty() && working_dir.front() == '/') return working_dir;
  static std::mutex mu;
  static std::map<std::string, std::string> known;
  std::lock_guard lock(mu);
  if (auto it = known.find(working_dir); it != known.end()) return it->second;
  std::string pwd;
  struct stat here {};
  struct stat named {};
  const char* inherited = std::getenv("PWD");
  if (working_dir.empty() && inherited != nullptr && inherited[0] == '/' && stat(".", &here) == 0 &&
      stat(inherited, &named) == 0 && here.st_dev == named.st_dev && here.st_ino == named.st_ino) {
    pwd = inherited;
  } else if (char* real = realpath(working_dir.empty() ? "." : working_dir.c_str(), nullptr)) {
    pwd = real;
    std::free(real);
  }
  known.emplace(working_dir, pwd);
  return pwd;
}

// The child's environment: the parent's with PWD set for its working folder
// and `options.env` applied (overriding). `envp` points into `parent` and
// `added`; `path` is the PATH it holds.
struct ChildEnvironment {
  explicit ChildEnvironment(const SpawnOptions& options) : parent(ParentEnvironment()) {
    added.reserve(options.env.size() + 1);
    for (const auto& [key, value] : options.env) added.push_back(StrCat(key, "=", value));
    if (std::none_of(options.env.begin(), options.env.end(),
                     [](const auto& kv) { return kv.first == "PWD"; })) {
      std::string pwd = ChildPwd(options.working_dir);
      if (!pwd.empty()) added.push_back(StrCat("PWD=", pwd));
    }
    // The last of repeated overrides wins.
    std::stable_sort(added.begin(), added.end(),
                     [](const std::string& a, const std::string& b) { return Key(a) < Key(b); });
    envp.reserve(parent->size() + added.size() + 1);
    size_t i = 0;
    for (size_t j = 0; j < added.size(); ++j) {
      if (j + 1 < added.size() && Key(added[j + 1]) == Key(added[j])) continue;
      while (i < parent->size() && Key((*parent)[i]) < Key(added[j])) Add((*parent)[i++]);
      if (i < parent->size() && Key((*parent)[i]) == Key(added[j])) ++i;
      Add(added[j]);
    }
    while (i < parent->size()) Add((*parent)[i++]);
    envp.push_back(nullptr);
  }

  void Add(const std::string& entry) {
    envp.push_back(const_cast<char*>(entry.c_str()));
    if (Key(entry) == "PATH") path = std::string_view(entry).substr(5);
  }

  std::shared_ptr<const std::vector<std::string>> parent;
  std::vector<std::string> added;
  std::vector<char*> envp;
  std::string_view path = "/usr/local/bin:/usr/bin:/bin";  // execvp's default
};

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
  struct Cleanup {
    posix_spawn_file_actions_t* actions;
    posix_spawnattr_t* attr;
    ~Cleanup() {
      posix_spawn_file_actions_destroy(actions);
      posix_spawnattr_destroy(attr);
    }
  } cleanup{&actions, &attr};

  ChildEnvironment env(options);
  const std::string_view path = env.path;
  const std::string program = FindProgram(options.argv[0], path);
  if (program.empty()) {
    // What a shell does too: exit status 127, the program named.
    return absl::NotFoundError(StrCat("cannot start '", CEscape(options.argv[0]),
                                      "': no such program on PATH=", CEscape(path)));
  }
  std::vector<char*> argv;
  argv.reserve(options.argv.size() + 2);
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), env.envp.data());
  if (rc == ENOEXEC) {
    // A file without a #! line: a shell script, as execvp and sh run it.
    static char kShell[] = "/bin/sh";
    argv.insert(argv.begin(), kShell);
    argv[1] = const_cast<char*>(program.c_str());
    rc = posix_spawn(&pid, kShell, &actions, &attr, argv.data(), env.envp.data());
  }
  if (rc == ENOENT && access(program.c_str(), F_OK) != 0) {
    // A path to a program that is not there (not the working folder).
    return absl::NotFoundError(
        StrCat("cannot start '", CEscape(options.argv[0]), "': ", std::strerror(rc)));
  }
  if (rc == EACCES) {
    // Exit status 126, as a shell gives.
    return absl::PermissionDeniedError(
        StrCat("cannot start '", CEscape(options.argv[0]), "': ", std::strerror(rc)));
  }
  if (rc != 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot start '", CEscape(options.argv[0]), "': ", std::strerror(rc)));
  }
  return Subprocess(pid);
}

int SpawnErrorExitCode(const absl::Status& status) {
  if (absl::IsNotFound(status)) return 127;
  if (absl::IsPermissionDenied(status)) return 126;
  return -1;
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
