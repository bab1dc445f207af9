// The file side of the C++ task helper (tierflow_task.h, which includes
// it; docs/task-helpers.md): the helper's Error, POSIX file helpers (durable
// and atomic writes), the stream manifest's JSON parser and the listing of
// an input's files. Header-only, C++17, the standard library plus POSIX.
// Everything but Error is tierflow::task::internal, not part of the API.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace tierflow::task {

// A task-side failure: a variable that is not set, a bad stream manifest, a
// checkpoint that cannot be written.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace internal {

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
}  // namespace tierflow::task
