// Task-side helper for tierflow tasks written in C++: params, streamed
// inputs, data-wait accounting and checkpoints (docs/task-helpers.md). Header-only,
// C++17, the standard library plus the POSIX calls it needs (fsync,
// O_APPEND, rename). The same API as sdk/python/tierflow_task.py, with the
// project's FunctionName spelling: shards() is Shards(), open_shard() is
// OpenShard(), and so on.
//
//   #include "tierflow_task.h"
//   namespace tf = tierflow::task;
//   for (size_t i = 0; i < tf::ShardCount("shards"); ++i) {
//     std::ifstream in = tf::OpenShard("shards", i);  // waits until shard i is there
//     ...
//   }
//   std::string dir = tf::CheckpointPath(epoch);      // write the checkpoint's files here
//   tf::CommitCheckpoint(epoch, {{"loss", 0.12}});    // then commit it
//   tf::SaveCheckpoint(epoch, {{"w.bin", tf::Bytes(w)}});  // or: snapshot, written and
//                                                     // committed in the background
//   if (auto latest = tf::LatestCheckpoint()) resume_from(latest->step, latest->path);
//
// Failures throw tierflow::task::Error (a std::runtime_error, declared in
// tierflow_task_files.h, which this header includes: copy both) with a
// message that says what to fix; an index past the last file throws
// std::out_of_range. The free functions use one Task built from the process
// environment; a Task can also be built from a map (tests do). A Task is
// thread-safe.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "tierflow_task_files.h"

extern "C" char** environ;

namespace tierflow::task {

// Error, a task-side failure, is declared in tierflow_task_files.h.

// A committed checkpoint: its step and its folder.
struct Checkpoint {
  int64_t step = 0;
  std::string path;
};

// One JSON scalar of checkpoint metadata: a bool, an integer, a finite
// number or a string.
class Value {
 public:
  Value(bool v) : value_(v) {}                         // NOLINT(google-explicit-constructor)
  Value(int v) : value_(int64_t{v}) {}                 // NOLINT(google-explicit-constructor)
  Value(long v) : value_(int64_t{v}) {}                // NOLINT(google-explicit-constructor)
  Value(long long v) : value_(int64_t{v}) {}           // NOLINT(google-explicit-constructor)
  Value(unsigned v) : value_(int64_t{v}) {}            // NOLINT(google-explicit-constructor)
  Value(unsigned long v) : value_(Checked(v)) {}       // NOLINT(google-explicit-constructor)
  Value(unsigned long long v) : value_(Checked(v)) {}  // NOLINT(google-explicit-constructor)
  Value(double v) : value_(v) {}                       // NOLINT(google-explicit-constructor)
  Value(const char* v) : value_(std::string(v)) {}     // NOLINT(google-explicit-constructor)
  Value(std::string v) : value_(std::move(v)) {}       // NOLINT(google-explicit-constructor)

  std::string ToJson() const;

 private:
  template <typename U>
  static int64_t Checked(U v) {
    if (v > static_cast<U>(std::numeric_limits<int64_t>::max())) {
      throw Error("checkpoint metadata: " + std::to_string(v) + " is too large");
    }
    return static_cast<int64_t>(v);
  }

  std::variant<bool, int64_t, double, std::string> value_;
};

// Checkpoint metadata, written in this order after "step".
using Metadata = std::vector<std::pair<std::string, Value>>;

// The files of a SaveCheckpoint: path in the checkpoint folder, bytes.
using CheckpointFiles = std::vector<std::pair<std::string, std::string_view>>;

// The bytes of a contiguous container of trivially copyable values (a
// std::vector<float> of weights), for CheckpointFiles.
template <typename Container>
std::string_view Bytes(const Container& c) {
  return {reinterpret_cast<const char*>(std::data(c)), std::size(c) * sizeof(*std::data(c))};
}

// The task contract as seen from inside a task: inputs, streamed files,
// waits and checkpoints, read from an environment (the process's by
// default). Thread-safe: inputs are listed once and cached; waits are
// summed under a lock.
class Task {
 public:
  // From the process environment, as it is now.
  Task();
  // From the given variables (tests).
  explicit Task(std::map<std::string, std::string> environment);

  // Waits for a SaveCheckpoint in flight (its failure was printed).
  ~Task();

  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  // $TIERFLOW_PARAM_<NAME>: the param's value as text (a list param's
  // items joined by commas). A stage is given only the params it references
  // or declares; asked for one it was not given, throws an Error that says
  // how to declare it.
  std::string Param(const std::string& name) const;

  // $TIERFLOW_INPUT_<NAME>: the input's path on the task's working tier.
  std::string InputPath(const std::string& name) const;
  // The input's regular files, relative to InputPath(name): for a streamed
  // input in the order the worker copies them (its manifest), otherwise
  // every file under the folder, recursively, sorted by path.
  std::vector<std::string> Shards(const std::string& name);
  size_t ShardCount(const std::string& name);
  // The absolute path of file i, once it exists. For a streamed input,
  // first writes i to <manifest>.next (the copier stays a bounded window
  // ahead of it), then polls for the file with a backoff from 1 to 4 ms;
  // the time waited is added to WaitedSeconds() and appended to
  // $TIERFLOW_DATA_WAIT_FILE. Throws Error when the copier reports in
  // <manifest>.failed that the file will not come.
  std::string ShardPath(const std::string& name, size_t i);
  // ShardPath, opened for binary reading.
  std::ifstream OpenShard(const std::string& name, size_t i);
  // Seconds this Task has waited for streamed files so far.
  double WaitedSeconds() const;

  // $TIERFLOW_CHECKPOINT_DIR, created if missing.
  std::string CheckpointDir() const;
  // $TIERFLOW_CHECKPOINT_DIR/step-%08d, created. An uncommitted folder left
  // by an earlier attempt is emptied the first time this Task asks for it;
  // a committed step is refused.
  std::string CheckpointPath(int64_t step);
  // fsyncs every file of the step's folder, then writes step-%08d.committed
  // (JSON {"step": N, metadata...}) atomically. Returns the marker's path.
  std::string CommitCheckpoint(int64_t step, const Metadata& metadata = {});
  // The highest step whose marker and folder both exist, if any.
  std::optional<Checkpoint> LatestCheckpoint() const;
  // Saves checkpoint `step` without waiting for storage: copies each file's
  // bytes into staging memory this Task keeps (reused while a file keeps
  // its size) and returns; a background thread then writes the files into
  // CheckpointPath(step) and commits them with `metadata`, as
  // CommitCheckpoint does. The caller may change its buffers at once. One
  // save is in flight at a time: a call first waits for the one before, so
  // measure the time blocked around it. A background failure is printed to
  // stderr and thrown by the next SaveCheckpoint or WaitCheckpoint. Names
  // are relative paths ("weights.bin", "optim/state.bin") without "." or
  // ".." parts, none inside another.
  void SaveCheckpoint(int64_t step, const CheckpointFiles& files, const Metadata& metadata = {});
  // Waits for the SaveCheckpoint in flight, if any: its marker's path, or
  // nullopt when there was none; throws its failure.
  std::optional<std::string> WaitCheckpoint();

 private:
  struct Input {
    std::string root;
    std::string manifest;  // empty: not streamed
    std::vector<std::string> files;
    bool single_file = false;
  };

  struct Save {
    int64_t step = 0;
    std::thread thread;
    std::string marker;
    std::string error;  // empty: saved
  };

  std::optional<std::string> Lookup(const std::string& prefix, const std::string& name) const;
  std::string Commit(int64_t step, const std::string& json);
  void WriteCheckpoint(Save& save, const std::string& json);
  std::optional<std::string> WaitCheckpointLocked();
  std::shared_ptr<const Input> GetInput(const std::string& name);
  void Account(double seconds, const std::string& name, size_t index);

  std::map<std::string, std::string> environment_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Input>> inputs_;  // guarded by mutex_
  double waited_ = 0;                                           // guarded by mutex_
  std::set<int64_t> asked_steps_;  // CheckpointPath was called for; guarded by mutex_
  // SaveCheckpoint: the save in flight, and the staging buffers it copied
  // into (name -> bytes), reused by the next one. Guarded by save_mutex_.
  std::mutex save_mutex_;
  std::unique_ptr<Save> saving_;
  std::map<std::string, std::string> staging_;
};

// The Task of this process, built from its environment on first use.
inline Task& DefaultTask() {
  static Task task;
  return task;
}

inline std::string Param(const std::string& name) { return DefaultTask().Param(name); }
inline std::string InputPath(const std::string& name) { return DefaultTask().InputPath(name); }
inline std::vector<std::string> Shards(const std::string& name) {
  return DefaultTask().Shards(name);
}
inline size_t ShardCount(const std::string& name) { return DefaultTask().ShardCount(name); }
inline std::string ShardPath(const std::string& name, size_t i) {
  return DefaultTask().ShardPath(name, i);
}
inline std::ifstream OpenShard(const std::string& name, size_t i) {
  return DefaultTask().OpenShard(name, i);
}
inline double WaitedSeconds() { return DefaultTask().WaitedSeconds(); }
inline std::string CheckpointDir() { return DefaultTask().CheckpointDir(); }
inline std::string CheckpointPath(int64_t step) { return DefaultTask().CheckpointPath(step); }
inline std::string CommitCheckpoint(int64_t step, const Metadata& metadata = {}) {
  return DefaultTask().CommitCheckpoint(step, metadata);
}
inline std::optional<Checkpoint> LatestCheckpoint() { return DefaultTask().LatestCheckpoint(); }
inline void SaveCheckpoint(int64_t step, const CheckpointFiles& files,
                           const Metadata& metadata = {}) {
  DefaultTask().SaveCheckpoint(step, files, metadata);
}
inline std::optional<std::string> WaitCheckpoint() { return DefaultTask().WaitCheckpoint(); }

// ---------------------------------------------------------------------------
// Implementation (the file helpers and the manifest parser are in
// tierflow_task_files.h).

namespace internal {

inline std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

inline std::string StepName(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%08lld", static_cast<long long>(step));
  return buffer;
}

inline void CheckStep(int64_t step) {
  if (step < 0) {
    throw Error("a checkpoint step must be >= 0, got " + std::to_string(step));
  }
}

// Checks SaveCheckpoint's file names: relative paths without "", "." or
// ".." parts, each given once, none inside another.
inline void CheckCheckpointFiles(const CheckpointFiles& files) {
  if (files.empty()) throw Error("SaveCheckpoint: no files to save");
  std::set<std::string> names;
  for (const auto& file : files) {
    const std::string& name = file.first;
    bool ok = !name.empty() && name.find('\0') == std::string::npos;
    for (size_t start = 0; ok;) {
      size_t slash = name.find('/', start);
      std::string_view part(name.data() + start,
                            (slash == std::string::npos ? name.size() : slash) - start);
      ok = !part.empty() && part != "." && part != "..";
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (!ok) {
      throw Error("SaveCheckpoint: '" + name +
                  "' is not a file name inside the checkpoint folder (a relative path like "
                  "'weights.bin' or 'optim/state.bin', no '.' or '..')");
    }
    if (!names.insert(name).second) throw Error("SaveCheckpoint: " + name + " is given twice");
  }
  for (const std::string& name : names) {
    for (size_t slash = name.find('/'); slash != std::string::npos;
         slash = name.find('/', slash + 1)) {
      if (names.count(name.substr(0, slash)) != 0) {
        throw Error("SaveCheckpoint: " + name.substr(0, slash) + " is a file, so " + name +
                    " cannot be inside it");
      }
    }
  }
}

inline void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
          out += buffer;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace internal

inline std::string Value::ToJson() const {
  std::string out;
  if (const bool* b = std::get_if<bool>(&value_)) {
    out = *b ? "true" : "false";
  } else if (const int64_t* i = std::get_if<int64_t>(&value_)) {
    out = std::to_string(*i);
  } else if (const double* d = std::get_if<double>(&value_)) {
    if (!std::isfinite(*d)) throw Error("checkpoint metadata: a number must be finite");
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%.17g", *d);
    out = buffer;
    if (out.find_first_of(".eEn") == std::string::npos) out += ".0";
  } else {
    internal::AppendJsonString(out, std::get<std::string>(value_));
  }
  return out;
}

inline Task::Task() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    environment_.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
}

inline Task::Task(std::map<std::string, std::string> environment)
    : environment_(std::move(environment)) {}

inline std::optional<std::string> Task::Lookup(const std::string& prefix,
                                               const std::string& name) const {
  if (name.empty()) throw Error("an input name must not be empty");
  std::string key = prefix + internal::Upper(name);
  auto it = environment_.find(key);
  if (it != environment_.end()) return it->second;
  for (const auto& [k, v] : environment_) {
    if (internal::Upper(k) == key) return v;
  }
  return std::nullopt;
}

inline std::string Task::Param(const std::string& name) const {
  if (name.empty()) throw Error("a param name must not be empty");
  const std::string variable = "TIERFLOW_PARAM_" + internal::Upper(name);
  if (auto it = environment_.find(variable); it != environment_.end()) return it->second;
  auto get = [&](const char* key) {
    auto it = environment_.find(key);
    return it == environment_.end() ? std::optional<std::string>() : it->second;
  };
  const std::optional<std::string> withheld = get("TIERFLOW_WITHHELD_PARAMS");
  if (!withheld) {
    throw Error(variable + " is not set: param '" + name +
                "' was not given to this task (run it with tierflow, or set " + variable +
                " by hand)");
  }
  for (size_t start = 0; start <= withheld->size();) {
    size_t comma = withheld->find(',', start);
    if (comma == std::string::npos) comma = withheld->size();
    const std::string declared = withheld->substr(start, comma - start);
    if (!declared.empty() && internal::Upper(declared) == internal::Upper(name)) {
      throw Error("param '" + declared + "' was not given to stage '" +
                  get("TIERFLOW_STAGE").value_or("?") + "': declare it with `params: [" + declared +
                  "]` (or `params: all`) in the stage");
    }
    start = comma + 1;
  }
  throw Error("param '" + name + "' is not a param of pipeline '" +
              get("TIERFLOW_PIPELINE").value_or("?") +
              "' (declare it under the pipeline's params:)");
}

inline std::string Task::InputPath(const std::string& name) const {
  std::optional<std::string> value = Lookup("TIERFLOW_INPUT_", name);
  if (!value || value->empty()) {
    throw Error("TIERFLOW_INPUT_" + internal::Upper(name) + " is not set: '" + name +
                "' is not an input of this task (declare it under the stage's inputs:)");
  }
  return *value;
}

inline std::shared_ptr<const Task::Input> Task::GetInput(const std::string& name) {
  std::string key = internal::Upper(name);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = inputs_.find(key);
    if (it != inputs_.end()) return it->second;
  }
  auto input = std::make_shared<Input>();
  input->root = InputPath(name);
  input->manifest = Lookup("TIERFLOW_STREAM_", name).value_or("");
  if (!input->manifest.empty() && !internal::Exists(input->manifest) &&
      internal::IsRegularFile(input->root)) {
    input->manifest.clear();  // a single file is copied whole: there is nothing to stream
  }
  if (!input->manifest.empty()) {
    input->files = internal::ReadManifest(input->manifest);
  } else {
    input->files = internal::ListFiles(name, input->root, &input->single_file);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  return inputs_.emplace(key, std::move(input)).first->second;
}

inline std::vector<std::string> Task::Shards(const std::string& name) {
  return GetInput(name)->files;
}

inline size_t Task::ShardCount(const std::string& name) { return GetInput(name)->files.size(); }

inline std::string Task::ShardPath(const std::string& name, size_t i) {
  std::shared_ptr<const Input> input = GetInput(name);
  if (i >= input->files.size()) {
    throw std::out_of_range("input " + name + " has " + std::to_string(input->files.size()) +
                            " files, no file " + std::to_string(i));
  }
  std::string path = input->single_file
                         ? input->root
                         : (std::filesystem::path(input->root) / input->files[i]).string();
  if (input->manifest.empty()) {
    if (!internal::IsRegularFile(path)) throw Error("input " + name + ": " + path + " is gone");
    return path;
  }
  internal::WriteAtomic(input->manifest + ".next", std::to_string(i) + "\n", false);
  if (internal::IsRegularFile(path)) return path;
  auto started = std::chrono::steady_clock::now();
  auto delay = std::chrono::microseconds(1000);
  const auto max_delay = std::chrono::microseconds(4000);  // as the Python helpers
  auto account = [&] {
    std::chrono::duration<double> waited = std::chrono::steady_clock::now() - started;
    Account(waited.count(), name, i);
  };
  while (true) {
    std::this_thread::sleep_for(delay);
    if (internal::IsRegularFile(path)) break;
    if (std::optional<std::string> failure = internal::ReadFailure(input->manifest)) {
      account();
      throw Error("input " + name + ": file " + std::to_string(i) + " (" + input->files[i] +
                  ") will not come: the copy failed: " + *failure);
    }
    delay = std::min(delay * 2, max_delay);
  }
  account();
  return path;
}

inline std::ifstream Task::OpenShard(const std::string& name, size_t i) {
  std::string path = ShardPath(name, i);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(internal::Errno("cannot open", path));
  return in;
}

inline double Task::WaitedSeconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waited_;
}

inline void Task::Account(double seconds, const std::string& name, size_t index) {
  if (!(seconds > 0)) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    waited_ += seconds;
  }
  auto it = environment_.find("TIERFLOW_DATA_WAIT_FILE");
  if (it == environment_.end() || it->second.empty()) return;
  char number[64];
  std::snprintf(number, sizeof number, "%.6f", seconds);
  std::string line = std::string(number) + " " + name + " " + std::to_string(index) + "\n";
  int fd = ::open(it->second.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(internal::Errno("cannot open", it->second));
  // One write per line: concurrent appenders never interleave inside a line.
  ssize_t n = ::write(fd, line.data(), line.size());
  int saved = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    errno = n < 0 ? saved : EIO;
    throw Error(internal::Errno("cannot append to", it->second));
  }
}

inline std::string Task::CheckpointDir() const {
  auto it = environment_.find("TIERFLOW_CHECKPOINT_DIR");
  if (it == environment_.end() || it->second.empty()) {
    throw Error(
        "TIERFLOW_CHECKPOINT_DIR is not set: add `checkpoints: true` (or "
        "`checkpoints: {keep: N}`) to the stage to give the task a checkpoint folder");
  }
  std::error_code ec;
  std::filesystem::create_directories(it->second, ec);
  if (ec) throw Error("cannot create " + it->second + ": " + ec.message());
  return it->second;
}

inline std::string Task::CheckpointPath(int64_t step) {
  internal::CheckStep(step);
  std::string path = (std::filesystem::path(CheckpointDir()) / internal::StepName(step)).string();
  if (internal::Exists(path + ".committed")) {
    throw Error("checkpoint " + std::to_string(step) + " is already committed (" + path +
                ".committed): a committed checkpoint is never modified; write a new step");
  }
  bool asked_before;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    asked_before = !asked_steps_.insert(step).second;
  }
  std::error_code ec;
  if (!asked_before && internal::Exists(path)) {
    std::filesystem::remove_all(path, ec);
    if (ec) throw Error("cannot remove " + path + ": " + ec.message());
  }
  std::filesystem::create_directories(path, ec);
  if (ec) throw Error("cannot create " + path + ": " + ec.message());
  return path;
}

namespace internal {

// The committed marker's JSON: {"step": N, metadata...}.
inline std::string MarkerJson(const char* call, int64_t step, const Metadata& metadata) {
  std::string json = "{\"step\": " + std::to_string(step);
  for (const auto& [key, value] : metadata) {
    if (key == "step") {
      throw Error(std::string(call) + ": 'step' is set by the step argument, not a metadata key");
    }
    json += ", ";
    AppendJsonString(json, key);
    json += ": " + value.ToJson();
  }
  return json + "}\n";
}

}  // namespace internal

inline std::string Task::CommitCheckpoint(int64_t step, const Metadata& metadata) {
  internal::CheckStep(step);
  return Commit(step, internal::MarkerJson("CommitCheckpoint", step, metadata));
}

inline std::string Task::Commit(int64_t step, const std::string& json) {
  namespace fs = std::filesystem;
  std::string directory = CheckpointDir();
  std::string path = (fs::path(directory) / internal::StepName(step)).string();
  std::string marker = path + ".committed";
  if (internal::Exists(marker)) {
    throw Error("checkpoint " + std::to_string(step) + " is already committed (" + marker + ")");
  }
  if (!internal::IsDirectory(path)) {
    throw Error("checkpoint " + std::to_string(step) + " has no folder " + path +
                ": write its files into CheckpointPath(" + std::to_string(step) + ") first");
  }

  // Files first, then their folders deepest first, then the marker.
  std::vector<std::string> folders{path};
  std::error_code ec;
  fs::recursive_directory_iterator it(path, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code entry_ec;
    fs::file_type type = it->symlink_status(entry_ec).type();
    if (type == fs::file_type::regular) {
      internal::SyncPath(it->path().string(), false);
    } else if (type == fs::file_type::directory) {
      folders.push_back(it->path().string());
    }
  }
  if (ec) throw Error("cannot list " + path + ": " + ec.message());
  for (auto f = folders.rbegin(); f != folders.rend(); ++f) internal::SyncPath(*f, true);
  internal::WriteAtomic(marker, json, true);
  internal::SyncPath(directory, true);
  return marker;
}

inline std::optional<Checkpoint> Task::LatestCheckpoint() const {
  namespace fs = std::filesystem;
  std::string directory = CheckpointDir();
  std::optional<Checkpoint> best;
  std::error_code ec;
  constexpr std::string_view kPrefix = "step-";
  constexpr std::string_view kSuffix = ".committed";
  for (fs::directory_iterator it(directory, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string entry = it->path().filename().string();
    if (entry.size() < kPrefix.size() + 8 + kSuffix.size() ||
        entry.compare(0, kPrefix.size(), kPrefix) != 0 ||
        entry.compare(entry.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    std::string digits =
        entry.substr(kPrefix.size(), entry.size() - kPrefix.size() - kSuffix.size());
    if (digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    int64_t step = std::stoll(digits);
    std::string folder_name = internal::StepName(step);
    if (folder_name != entry.substr(0, entry.size() - kSuffix.size())) continue;
    std::string folder = (fs::path(directory) / folder_name).string();
    if (!internal::IsRegularFile(it->path().string()) || !internal::IsDirectory(folder)) continue;
    if (!best || step > best->step) best = Checkpoint{step, folder};
  }
  if (ec) throw Error("cannot list " + directory + ": " + ec.message());
  return best;
}

inline Task::~Task() {
  std::lock_guard<std::mutex> lock(save_mutex_);
  if (saving_) saving_->thread.join();
}

inline void Task::SaveCheckpoint(int64_t step, const CheckpointFiles& files,
                                 const Metadata& metadata) {
  internal::CheckStep(step);
  std::string json = internal::MarkerJson("SaveCheckpoint", step, metadata);
  internal::CheckCheckpointFiles(files);
  std::lock_guard<std::mutex> lock(save_mutex_);
  WaitCheckpointLocked();
  std::string marker =
      (std::filesystem::path(CheckpointDir()) / internal::StepName(step)).string() + ".committed";
  if (internal::Exists(marker)) {
    throw Error("checkpoint " + std::to_string(step) + " is already committed (" + marker + ")");
  }
  std::map<std::string, std::string> staging;
  for (const auto& [name, bytes] : files) {
    auto node = staging_.extract(name);
    std::string buffer = node ? std::move(node.mapped()) : std::string();
    buffer.resize(bytes.size());  // no reallocation while a file keeps its size
    std::memcpy(buffer.data(), bytes.data(), bytes.size());
    staging.emplace(name, std::move(buffer));
  }
  staging_ = std::move(staging);  // a file no longer saved frees its buffer
  saving_ = std::make_unique<Save>();
  saving_->step = step;
  saving_->thread = std::thread(
      [this, save = saving_.get(), json = std::move(json)] { WriteCheckpoint(*save, json); });
}

inline std::optional<std::string> Task::WaitCheckpoint() {
  std::lock_guard<std::mutex> lock(save_mutex_);
  return WaitCheckpointLocked();
}

inline std::optional<std::string> Task::WaitCheckpointLocked() {
  std::unique_ptr<Save> save = std::move(saving_);
  if (!save) return std::nullopt;
  save->thread.join();
  if (!save->error.empty()) {
    throw Error("checkpoint " + std::to_string(save->step) + " was not saved: " + save->error);
  }
  return save->marker;
}

// On the save's thread; staging_ is not changed until it is joined.
inline void Task::WriteCheckpoint(Save& save, const std::string& json) {
  try {
    std::string folder = CheckpointPath(save.step);
    for (const auto& [name, bytes] : staging_) {
      std::filesystem::path path = std::filesystem::path(folder) / name;
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) throw Error("cannot create " + path.parent_path().string() + ": " + ec.message());
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) throw Error(internal::Errno("cannot create", path.string()));
      try {
        internal::WriteAll(fd, bytes, path.string());
      } catch (...) {
        ::close(fd);
        throw;
      }
      if (::close(fd) != 0) throw Error(internal::Errno("cannot write", path.string()));
    }
    save.marker = Commit(save.step, json);
  } catch (const std::exception& e) {
    save.error = e.what();
    std::fprintf(stderr, "tierflow_task: checkpoint %lld was not saved: %s\n",
                 static_cast<long long>(save.step), e.what());
  }
}

}  // namespace tierflow::task
