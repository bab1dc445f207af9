// Task-side helper for tierflow tasks written in C++: streamed inputs,
// data-wait accounting and checkpoints (docs/task-helpers.md). Header-only,
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
// Failures throw tierflow::task::Error (a std::runtime_error) with a message
// that says what to fix; an index past the last file throws
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

extern "C" char** environ;

namespace tierflow::task {

// A task-side failure: a variable that is not set, a bad stream manifest, a
// checkpoint that cannot be written.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

  // $TIERFLOW_INPUT_<NAME>: the input's path on the task's working tier.
  std::string InputPath(const std::string& name) const;
  // The input's regular files, relative to InputPath(name): for a streamed
  // input in the order the worker copies them (its manifest), otherwise
  // every file under the folder, recursively, sorted by path.
  std::vector<std::string> Shards(const std::string& name);
  size_t ShardCount(const std::string& name);
  // The absolute path of file i, once it exists. For a streamed input,
  // first writes i to <manifest>.next (the copier stays a bounded window
  // ahead of it), then polls for the file with a backoff from 1 to 20 ms;
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
// Implementation.

namespace internal {

inline std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

inline std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

inline bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

inline bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

inline void WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(Errno("cannot write", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

inline void SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw Error(Errno("cannot open", path));
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) {
    errno = saved;
    throw Error(Errno("cannot fsync", path));
  }
}

// Writes `text` to a temporary file beside `path`, then renames it over `path`.
inline void WriteAtomic(const std::string& path, std::string_view text, bool sync) {
  std::filesystem::path target(path);
  std::string tmp =
      (target.parent_path() /
       ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
        std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()))))
          .string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(Errno("cannot create", tmp));
  try {
    WriteAll(fd, text, tmp);
    if (sync && ::fsync(fd) != 0) throw Error(Errno("cannot fsync", tmp));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error(Errno("cannot write", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string message = Errno("cannot rename " + tmp + " to", path);
    ::unlink(tmp.c_str());
    throw Error(message);
  }
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

// Reads the stream manifest {"files": ["rel/path", ...], "bytes": [n, ...]};
// other keys are skipped. Errors name the manifest and the byte offset.
class ManifestParser {
 public:
  ManifestParser(std::string_view text, std::string origin)
      : text_(text), origin_(std::move(origin)) {}

  std::vector<std::string> Files() {
    std::vector<std::string> files;
    std::optional<size_t> sizes;
    bool have_files = false;
    SkipSpace();
    Expect('{');
    SkipSpace();
    if (!Consume('}')) {
      while (true) {
        SkipSpace();
        std::string key = String();
        SkipSpace();
        Expect(':');
        SkipSpace();
        if (key == "files") {
          have_files = true;
          files = StringArray();
        } else if (key == "bytes") {
          sizes = CountNumbers();
        } else {
          SkipValue(0);
        }
        SkipSpace();
        if (Consume('}')) break;
        Expect(',');
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) Fail("unexpected text after the document");
    if (!have_files) Fail(R"(expected {"files": ["rel/path", ...], "bytes": [n, ...]})");
    if (sizes && *sizes != files.size()) Fail("'bytes' must list one size per file");
    for (const std::string& f : files) CheckRelative(f);
    return files;
  }

 private:
  [[noreturn]] void Fail(const std::string& message) const {
    throw Error("stream manifest " + origin_ + ": " + message + " (at byte " +
                std::to_string(pos_) + ")");
  }

  void CheckRelative(const std::string& f) const {
    bool bad = f.empty() || f[0] == '/';
    size_t start = 0;
    while (!bad && start <= f.size()) {
      size_t end = f.find('/', start);
      if (end == std::string::npos) end = f.size();
      std::string_view part(f.data() + start, end - start);
      bad = part.empty() || part == "." || part == "..";
      start = end + 1;
    }
    if (bad) throw Error("stream manifest " + origin_ + ": invalid relative path '" + f + "'");
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void Expect(char c) {
    if (!Consume(c)) Fail(std::string("expected '") + c + "'");
  }

  unsigned Hex4() {
    if (pos_ + 4 > text_.size()) Fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        Fail("invalid \\u escape");
      }
    }
    return v;
  }

  static void AppendUtf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  std::string String() {
    Expect('"');
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) Fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) Fail("control character in a string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) Fail("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          unsigned cp = Hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (!(Consume('\\') && Consume('u'))) Fail("unpaired surrogate in \\u escape");
            unsigned low = Hex4();
            if (low < 0xDC00 || low >= 0xE000) Fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            Fail("unpaired surrogate in \\u escape");
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          Fail("invalid escape in a string");
      }
    }
  }

  void Number() {
    size_t start = pos_;
    Consume('-');
    while (pos_ < text_.size() && std::strchr("0123456789.eE+-", text_[pos_]) != nullptr) ++pos_;
    if (pos_ == start || (pos_ == start + 1 && text_[start] == '-')) Fail("expected a value");
  }

  std::vector<std::string> StringArray() {
    std::vector<std::string> out;
    Expect('[');
    SkipSpace();
    if (Consume(']')) return out;
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') Fail("'files' must be a list of strings");
      out.push_back(String());
      SkipSpace();
      if (Consume(']')) return out;
      Expect(',');
    }
  }

  size_t CountNumbers() {
    size_t count = 0;
    Expect('[');
    SkipSpace();
    if (Consume(']')) return count;
    while (true) {
      SkipSpace();
      Number();
      ++count;
      SkipSpace();
      if (Consume(']')) return count;
      Expect(',');
    }
  }

  void SkipValue(int depth) {
    if (depth > 64) Fail("nested too deeply");
    if (pos_ >= text_.size()) Fail("expected a value");
    char c = text_[pos_];
    if (c == '"') {
      String();
    } else if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++pos_;
      SkipSpace();
      if (Consume(close)) return;
      while (true) {
        SkipSpace();
        if (close == '}') {
          String();
          SkipSpace();
          Expect(':');
          SkipSpace();
        }
        SkipValue(depth + 1);
        SkipSpace();
        if (Consume(close)) return;
        Expect(',');
      }
    } else if (text_.substr(pos_, 4) == "true" || text_.substr(pos_, 4) == "null") {
      pos_ += 4;
    } else if (text_.substr(pos_, 5) == "false") {
      pos_ += 5;
    } else {
      Number();
    }
  }

  std::string_view text_;
  std::string origin_;
  size_t pos_ = 0;
};

inline std::vector<std::string> ReadManifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errno("stream manifest: cannot open", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(Errno("stream manifest: cannot read", path));
  return ManifestParser(text, path).Files();
}

// The copier's reason from <manifest>.failed, or nullopt while it has not failed.
inline std::optional<std::string> ReadFailure(const std::string& manifest) {
  std::ifstream in(manifest + ".failed", std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "no reason given" : text;
}

inline std::vector<std::string> ListFiles(const std::string& name, const std::string& root,
                                          bool* single_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(root, ec);
  if (ec) throw Error("input " + name + ": " + root + ": " + ec.message());
  if (fs::is_regular_file(status)) {
    *single_file = true;
    return {fs::path(root).filename().string()};
  }
  if (!fs::is_directory(status)) {
    throw Error("input " + name + ": " + root + " is neither a file nor a folder");
  }
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code entry_ec;
    if (it->symlink_status(entry_ec).type() == fs::file_type::regular) {
      files.push_back(it->path().lexically_relative(root).generic_string());
    }
  }
  if (ec) throw Error("input " + name + ": listing " + root + ": " + ec.message());
  std::sort(files.begin(), files.end());  // bytes of the paths, as the Python helper sorts
  return files;
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
  const auto max_delay = std::chrono::microseconds(20000);
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
