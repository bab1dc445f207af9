#include "common/testing/child_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"

extern char** environ;

namespace tierflow::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string NameOf(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// This process's environment with `spec`'s changes.
std::vector<std::string> Environment(const ChildSpec& spec) {
  std::vector<std::string> names = spec.unset_env;
  for (const std::string& entry : spec.env) names.push_back(NameOf(entry));
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string name = NameOf(*entry);
    if (std::find(names.begin(), names.end(), name) == names.end()) env.emplace_back(*entry);
  }
  env.insert(env.end(), spec.env.begin(), spec.env.end());
  return env;
}

void CloseAll(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(ChildSpec spec) {
  // Everything the child needs is made before fork: it only dup2s and execs.
  std::vector<std::string> argv_text = {spec.arg0.empty() ? spec.program : spec.arg0};
  argv_text.insert(argv_text.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_text = Environment(spec);
  std::vector<char*> envp;
  for (std::string& entry : env_text) envp.push_back(entry.data());
  envp.push_back(nullptr);

  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int exec_error[2] = {-1, -1};  // closed by a successful exec; else errno
  auto sink = [&](const std::string& path, int pipe_ends[2]) -> absl::Status {
    if (!path.empty()) {
      pipe_ends[1] = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (pipe_ends[1] < 0) {
        return absl::InternalError("cannot create " + path + ": " + std::strerror(errno));
      }
    } else if (spec.capture && pipe2(pipe_ends, O_CLOEXEC) != 0) {
      return absl::InternalError(std::string("pipe: ") + std::strerror(errno));
    }
    return absl::OkStatus();
  };
  absl::Status made = sink(spec.stdout_path, out);
  if (made.ok()) made = sink(spec.stderr_path, err);
  if (made.ok() && pipe2(exec_error, O_CLOEXEC) != 0) {
    made = absl::InternalError(std::string("pipe: ") + std::strerror(errno));
  }
  if (!made.ok()) {
    CloseAll({out[0], out[1], err[0], err[1], exec_error[0], exec_error[1]});
    return made;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    if (out[1] >= 0) dup2(out[1], STDOUT_FILENO);
    if (err[1] >= 0) dup2(err[1], STDERR_FILENO);
    execvpe(spec.program.c_str(), argv.data(), envp.data());
    const int error = errno;
    (void)!write(exec_error[1], &error, sizeof error);
    _exit(127);
  }
  const int fork_error = errno;
  CloseAll({out[1], err[1], exec_error[1]});
  if (pid < 0) {
    CloseAll({out[0], err[0], exec_error[0]});
    return absl::InternalError(std::string("fork: ") + std::strerror(fork_error));
  }
  int error = 0;
  ssize_t n;
  while ((n = read(exec_error[0], &error, sizeof error)) < 0 && errno == EINTR) {
  }
  close(exec_error[0]);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess(pid, out[0], err[0], spec.program));
  if (n > 0) {
    child->Wait();  // reaps the child that could not exec
    return absl::FailedPreconditionError("cannot run " + spec.program + ": " +
                                         std::strerror(error));
  }
  return child;
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  CloseAll({fds_[0], fds_[1]});
}

void ChildProcess::Pump(std::chrono::milliseconds wait) {
  pollfd fds[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
  if (poll(fds, 2, static_cast<int>(wait.count())) <= 0) return;
  std::string* sinks[2] = {&result_.out, &result_.err};
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    char buffer[65536];
    const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) {
      sinks[i]->append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      close(fds_[i]);
      fds_[i] = -1;
    }
  }
}

bool ChildProcess::ReadUntil(const std::function<bool(const ChildResult&)>& done,
                             std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while ((fds_[0] >= 0 || fds_[1] >= 0) && !done(result_)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    Pump(left);
  }
  return true;
}

ChildResult ChildProcess::Wait(std::chrono::milliseconds limit) {
  if (reaped_) return result_;
  const auto deadline = Clock::now() + limit;
  int status = 0;
  bool exited = false;
  // Its output to the end (a grandchild holding a pipe keeps it open), then
  // its exit.
  while (true) {
    if (!exited) {
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      exited = done == pid_ || done < 0;
    }
    if (exited && fds_[0] < 0 && fds_[1] < 0) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      kill(pid_, SIGKILL);
      if (!exited) waitpid(pid_, &status, 0);
      reaped_ = true;
      result_.timed_out = true;
      ADD_FAILURE() << program_ << " (pid " << pid_ << ") did not end within " << limit.count()
                    << " ms; killed";
      return result_;
    }
    if (fds_[0] >= 0 || fds_[1] >= 0) {
      Pump(std::min(left, std::chrono::milliseconds(exited ? 1000 : 20)));
    } else {
      usleep(5000);
    }
  }
  reaped_ = true;
  if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result_.signal = WTERMSIG(status);
  return result_;
}

void ChildProcess::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

ChildResult RunChild(ChildSpec spec, std::chrono::milliseconds limit) {
  const std::string program = spec.program;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(std::move(spec));
  if (!child.ok()) {
    ADD_FAILURE() << child.status();
    return {};
  }
  return (*child)->Wait(limit);
}

}  // namespace tierflow::testing
