// bench/transfer (posix part): copying one large file between two posix
// tiers on the same file system with tierflow's transfer engine, against
// `cp` and `dd bs=4M` on the same file in the same run. Every copy is timed
// from the start to the target being fsynced, with the source evicted from
// the page cache first, so all tools pay for the device. Tools take turns
// within each repetition; the table gives medians and the ratio to the
// best other tool. See bench/README.md.
//
//   transfer_posix [--dir DIR] [--size BYTES] [--runs N]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
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

// Runs argv (no shell), returns its exit status.
int Run(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    int null = open("/dev/null", O_WRONLY);
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
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dir")
      dir = argv[i + 1];
    else if (flag == "--size")
      size = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--runs")
      runs = std::atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: transfer_posix [--dir DIR] [--size BYTES] [--runs N]\n");
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
  const std::vector<std::string> tools = {"tierflow", "cp", "dd bs=4M"};
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
      } else {
        if (Run({"dd", "if=" + source.string(), "of=" + target.string(), "bs=4M"}) != 0) return 1;
      }
      Sync(target);
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
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
  printf("| tool | runs | median time | MB/s | vs best of cp, dd |\n|---|---:|---:|---:|---:|\n");
  for (const std::string& tool : tools) {
    const double m = median(seconds[tool]);
    printf("| %s | %d | %.3f s | %.0f | %.2fx |\n", tool.c_str(), runs, m,
           static_cast<double>(size) / 1e6 / m, best_other / m);
  }
  fs::remove_all(dir);
  return 0;
}
