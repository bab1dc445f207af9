// bench/transfer (posix part): copying one large file between two posix
// tiers on the same file system with tierflow's transfer engine, against
// `cp`, `dd bs=4M` and fio on the same file in the same run. Every copy is
// timed from the start to the target being fsynced, with the source evicted
// from the page cache first, so all tools pay for the device. fio moves no
// bytes from source to target: it issues the I/O of a copy (the source read
// sequentially, a same-size target written sequentially, both at once,
// 4 MiB blocks, buffered, fsync at the end). Tools take turns within each
// repetition; the table gives medians and the ratio to the best other tool.
// See bench/README.md.
//
//   transfer_posix [--dir DIR] [--size BYTES] [--runs N] [--no-fio]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "storage_adapters/posix.h"
#include "storage_adapters/transfer.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

void Evict(const fs::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

void Sync(const fs::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

// Whether `name` is an executable file in a folder of $PATH.
bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view folders = path != nullptr ? path : "";
  while (!folders.empty()) {
    const size_t colon = folders.find(':');
    const fs::path folder(folders.substr(0, colon));
    folders.remove_prefix(colon == std::string_view::npos ? folders.size() : colon + 1);
    if (!folder.empty() && access((folder / name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// fio splits file names at ':' unless escaped.
std::string FioName(const fs::path& path) {
  std::string out;
  for (char c : path.string()) {
    if (c == ':') out += '\\';
    out += c;
  }
  return out;
}

// fio's own time for a run of its jobs, from its terse output (version 3):
// the longest job's runtime, the end fsync included (in ms: field 9 for
// reads, 50 for writes). Negative when there is none.
double FioSeconds(const fs::path& terse) {
  std::ifstream in(terse);
  double ms = -1;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::stringstream parts(line);
    for (std::string field; std::getline(parts, field, ';');) fields.push_back(field);
    if (fields.size() < 50 || fields[0] != "3") continue;
    ms = std::max(
        {ms, std::strtod(fields[8].c_str(), nullptr), std::strtod(fields[49].c_str(), nullptr)});
  }
  return ms / 1000;
}

// Runs argv (no shell) with its output to /dev/null, returns its exit status.
int Run(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = fs::temp_directory_path() / "tierflow-transfer-bench";
  uint64_t size = uint64_t{1} << 30;
  int runs = 5;
  bool fio = true;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (flag == "--no-fio") {
      fio = false;
    } else if (flag == "--dir" && value != nullptr) {
      dir = argv[++i];
    } else if (flag == "--size" && value != nullptr) {
      size = std::strtoull(argv[++i], nullptr, 10);
    } else if (flag == "--runs" && value != nullptr) {
      runs = std::atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: transfer_posix [--dir DIR] [--size BYTES] [--runs N] [--no-fio]\n");
      return 2;
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir / "home");
  fs::create_directories(dir / "work");
  const fs::path source = dir / "home" / "shard.bin";
  {
    std::vector<char> chunk(4 << 20);
    std::mt19937_64 random(1);
    for (char& c : chunk) c = static_cast<char>(random());
    FILE* out = fopen(source.c_str(), "wb");
    for (uint64_t written = 0; written < size; written += chunk.size()) {
      fwrite(chunk.data(), 1, std::min<uint64_t>(chunk.size(), size - written), out);
    }
    fclose(out);
  }
  auto home = tierflow::storage::MakePosixAdapter({"home", (dir / "home").string(), false, false});
  auto work = tierflow::storage::MakePosixAdapter({"work", (dir / "work").string(), false, false});
  if (!home.ok() || !work.ok()) return 1;

  const fs::path target = dir / "work" / "shard.bin";
  std::map<std::string, std::vector<double>> seconds;
  std::vector<std::string> tools = {"tierflow", "cp", "dd bs=4M"};
  const std::string fio_tool = "fio bs=4M";
  const fs::path fio_output = dir / "fio.terse";
  std::vector<double> fio_wall;
  if (!fio) {
    printf("fio: left out (--no-fio): the table has no fio row\n\n");
  } else if (!OnPath("fio")) {
    printf(
        "fio: not found on PATH, so the table has no fio row (apt-get install fio; "
        "bench/run_transfer.sh installs it)\n\n");
  } else {
    tools.push_back(fio_tool);
  }
  for (int run = -1; run < runs; ++run) {  // run -1 warms up
    for (const std::string& tool : tools) {
      fs::remove(target);
      Evict(source);
      const Clock::time_point start = Clock::now();
      if (tool == "tierflow") {
        auto copied = tierflow::storage::CopyObject(**home, "shard.bin", **work, "shard.bin");
        if (!copied.ok()) {
          fprintf(stderr, "tierflow: %s\n", std::string(copied.status().message()).c_str());
          return 1;
        }
      } else if (tool == "cp") {
        if (Run({"cp", source.string(), target.string()}) != 0) return 1;
      } else if (tool == "dd bs=4M") {
        if (Run({"dd", "if=" + source.string(), "of=" + target.string(), "bs=4M"}) != 0) return 1;
      } else {
        const std::string bytes = std::to_string(size);
        const int status =
            Run({"fio", "--thread", "--ioengine=psync", "--bs=4M", "--size=" + bytes,
                 "--fallocate=none", "--name=read", "--filename=" + FioName(source), "--rw=read",
                 "--name=write", "--filename=" + FioName(target), "--rw=write", "--end_fsync=1",
                 "--output-format=terse", "--output=" + fio_output.string()});
        if (status != 0) {
          fprintf(stderr, "fio failed (exit status %d)\n", status);
          return 1;
        }
      }
      Sync(target);
      double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      if (tool == fio_tool) {
        // fio's start-up and exit take a fixed ~0.25 s (a clock
        // calibration, 100 ms and 10 ms sleeps): its own runtime is fairer.
        if (run >= 0) fio_wall.push_back(elapsed);
        elapsed = FioSeconds(fio_output);
        if (elapsed <= 0) {
          fprintf(stderr, "fio: no runtime in %s\n", fio_output.c_str());
          return 1;
        }
      }
      if (fs::file_size(target) != size) {
        fprintf(stderr, "%s: copied %ju bytes of %ju\n", tool.c_str(),
                static_cast<uintmax_t>(fs::file_size(target)), static_cast<uintmax_t>(size));
        return 1;
      }
      if (run >= 0) seconds[tool].push_back(elapsed);
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double best_other = 1e300;
  for (const std::string& tool : tools) {
    if (tool != "tierflow") best_other = std::min(best_other, median(seconds[tool]));
  }
  std::string others;
  for (const std::string& tool : tools) {
    if (tool != "tierflow") others += (others.empty() ? "" : ", ") + tool.substr(0, tool.find(' '));
  }
  printf("| tool | runs | median time | MB/s | vs best of %s |\n|---|---:|---:|---:|---:|\n",
         others.c_str());
  for (const std::string& tool : tools) {
    const double m = median(seconds[tool]);
    printf("| %s | %d | %.3f s | %.0f | %.2fx |\n", tool.c_str(), runs, m,
           static_cast<double>(size) / 1e6 / m, best_other / m);
  }
  if (!fio_wall.empty()) {
    printf(
        "\nfio: its own runtime (reads, writes and the end fsync); as a process it took %.3f s\n",
        median(fio_wall));
  }
  fs::remove_all(dir);
  return 0;
}
