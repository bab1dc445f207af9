// bench/transfer (S3 part): uploading and downloading one large file with
// tierflow's s3 adapter, single stream (parallel=1) and with parallel parts
// and ranges (parallel=4), against `curl --aws-sigv4` on the same file and
// the same server in the same run. Tools take turns within each repetition
// (the first tool rotates); every upload is checked for its size and every
// downloaded file for its size and content hash, so a broken transfer cannot
// look fast. The table gives medians and the speed relative to curl. See
// bench/README.md.
//
//   transfer_s3 [--endpoint URL | --swift-dir DIR] [--bucket NAME] [--region R]
//               [--access-key KEY] [--secret-key SECRET] [--size BYTES] [--runs N]
//               [--part-size BYTES] [--dir DIR] [--curl PATH] [--only LIST]
//
// --only upload,whole,parts (any of them, comma-separated; all by default)
// measures only those transfers: uploads, downloads of the object stored
// whole, downloads of the one stored in parts.
//
// Without --endpoint, the endpoint is read from DIR/endpoint, where DIR is
// --swift-dir or $TIERFLOW_SWIFT_DIR (scripts/swift.sh start DIR writes it).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "storage_adapters/local_artifact.h"
#include "storage_adapters/s3.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using tierflow::storage::Adapter;
using tierflow::storage::S3Config;

namespace {

constexpr char kUsage[] =
    "usage: transfer_s3 [--endpoint URL | --swift-dir DIR] [--bucket NAME] [--region R]\n"
    "                   [--access-key KEY] [--secret-key SECRET] [--size BYTES] [--runs N]\n"
    "                   [--part-size BYTES] [--dir DIR] [--curl PATH] [--only LIST]\n"
    "  --only: any of upload,whole,parts, comma-separated (all by default)\n";

struct Options {
  std::string endpoint;
  std::string swift_dir;
  std::string bucket = "tierflow-bench";
  std::string region = "us-east-1";
  std::string access_key = "test:tester";  // the Swift of scripts/swift.sh
  std::string secret_key = "testing";
  uint64_t size = uint64_t{256} << 20;
  int runs = 5;
  uint64_t part_size = uint64_t{8} << 20;  // S3Config's default
  fs::path dir = fs::temp_directory_path();
  std::string curl = "curl";
  std::string only = "upload,whole,parts";  // the transfers measured
};

// Whether `name` is one of the comma-separated `list`.
bool Listed(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
  }
  return false;
}

// One transfer: its wall time, and the CPU time it took in this process
// and its children (curl), and in the server's processes.
struct Sample {
  double seconds = 0;
  double client_cpu = 0;
  double server_cpu = 0;
};

// One way of moving the file: curl (adapter unset) or the s3 adapter.
struct Tool {
  std::string name;
  std::unique_ptr<Adapter> adapter;
  std::string key;  // where its uploads go
  double goal = 0;  // the speed relative to curl it should reach; 0: none
  std::map<std::string, std::vector<Sample>> samples;  // by direction
};

int Fail(const std::string& message) {
  fprintf(stderr, "transfer_s3: %s\n", message.c_str());
  return 1;
}

std::string ReadFirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// Runs argv (no shell) with stdout to /dev/null and stderr to `errors`;
// returns its exit status.
int Run(const std::vector<std::string>& args, const fs::path& errors) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    dup2(open("/dev/null", O_WRONLY), 1);
    dup2(open(errors.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
    execvp(argv[0], argv.data());
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 128;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Random bytes that never repeat, so a misplaced part or range cannot pass
// the hash check.
bool WriteRandomFile(const fs::path& path, uint64_t size) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937_64 random(1);
  std::vector<uint64_t> chunk((4 << 20) / sizeof(uint64_t));
  for (uint64_t written = 0; written < size;) {
    for (uint64_t& word : chunk) word = random();
    const uint64_t n = std::min<uint64_t>(chunk.size() * sizeof(uint64_t), size - written);
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
    written += n;
  }
  return static_cast<bool>(out.flush());
}

// "host" of "http://host:port/": the name curl looks up in a netrc file.
std::string HostOf(std::string_view endpoint) {
  const size_t scheme = endpoint.find("://");
  if (scheme != std::string_view::npos) endpoint.remove_prefix(scheme + 3);
  return std::string(endpoint.substr(0, endpoint.find_first_of(":/")));
}

double Median(const std::vector<Sample>& samples, double Sample::*field) {
  std::vector<double> values;
  for (const Sample& sample : samples) values.push_back(sample.*field);
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// CPU seconds (user and system) of this process and its reaped children.
double ClientCpu() {
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    getrusage(who, &usage);
    for (const timeval& time : {usage.ru_utime, usage.ru_stime}) {
      total += static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
    }
  }
  return total;
}

// The PIDs of the servers scripts/swift.sh started in `swift_dir`.
std::vector<pid_t> ServerPids(const std::string& swift_dir) {
  std::vector<pid_t> pids;
  if (swift_dir.empty()) return pids;
  for (const char* name : {"proxy", "account", "container", "object", "memcached"}) {
    const pid_t pid =
        std::atoi(ReadFirstLine(fs::path(swift_dir) / (std::string(name) + ".pid")).c_str());
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

// CPU seconds (user and system) the processes have used so far.
double ServerCpu(const std::vector<pid_t>& pids) {
  double ticks = 0;
  for (pid_t pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields 14 and 15 (utime, stime); the command name before them, in
    // parentheses, may hold spaces.
    std::istringstream fields(text.substr(text.rfind(')') + 1));
    std::string field;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);
    }
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  const std::map<std::string, std::function<void(const char*)>> flags = {
      {"--endpoint", [&](const char* v) { options.endpoint = v; }},
      {"--swift-dir", [&](const char* v) { options.swift_dir = v; }},
      {"--bucket", [&](const char* v) { options.bucket = v; }},
      {"--region", [&](const char* v) { options.region = v; }},
      {"--access-key", [&](const char* v) { options.access_key = v; }},
      {"--secret-key", [&](const char* v) { options.secret_key = v; }},
      {"--size", [&](const char* v) { options.size = std::strtoull(v, nullptr, 10); }},
      {"--runs", [&](const char* v) { options.runs = std::atoi(v); }},
      {"--part-size", [&](const char* v) { options.part_size = std::strtoull(v, nullptr, 10); }},
      {"--dir", [&](const char* v) { options.dir = v; }},
      {"--curl", [&](const char* v) { options.curl = v; }},
      {"--only", [&](const char* v) { options.only = v; }},
  };
  for (int i = 1; i < argc; i += 2) {
    auto flag = flags.find(argv[i]);
    if (flag == flags.end() || i + 1 >= argc) {
      fputs(kUsage, stderr);
      return 2;
    }
    flag->second(argv[i + 1]);
  }
  if (options.size == 0 || options.runs < 1) return Fail("--size and --runs must be positive");
  {
    std::string_view list = options.only;
    bool any = false;
    while (!list.empty()) {
      const size_t comma = list.find(',');
      const std::string_view name = list.substr(0, comma);
      if (name != "upload" && name != "whole" && name != "parts") {
        return Fail("--only takes upload, whole and parts, comma-separated, not '" +
                    std::string(name) + "'");
      }
      any = true;
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    }
    if (!any) return Fail("--only names no transfer");
  }
  if (options.endpoint.empty()) {
    if (options.swift_dir.empty() && std::getenv("TIERFLOW_SWIFT_DIR") != nullptr) {
      options.swift_dir = std::getenv("TIERFLOW_SWIFT_DIR");
    }
    if (options.swift_dir.empty()) {
      return Fail("no server: pass --endpoint URL, or --swift-dir DIR of scripts/swift.sh start");
    }
    options.endpoint = ReadFirstLine(fs::path(options.swift_dir) / "endpoint");
    if (options.endpoint.empty()) return Fail("no endpoint in " + options.swift_dir + "/endpoint");
  }
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  // curl gets the bucket in its URL and the credentials in a netrc file.
  if (options.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") !=
      std::string::npos) {
    return Fail("the bucket name may hold only a-z, 0-9, '.' and '-'");
  }
  for (const std::string* credential : {&options.access_key, &options.secret_key}) {
    if (credential->empty() || credential->find_first_of(" \t\r\n\"\\") != std::string::npos) {
      return Fail("the access key and secret must be non-empty, without spaces, quotes or '\\'");
    }
  }

  std::string pattern = (options.dir / "tierflow-transfer-s3.XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return Fail("cannot create a folder in " + options.dir.string() + ": " + strerror(errno));
  }
  const fs::path dir = pattern;
  const fs::path source = dir / "source.bin";
  const fs::path target = dir / "target.bin";
  const fs::path netrc = dir / "netrc";
  const fs::path curl_errors = dir / "curl.err";
  auto cleanup = [&](int code) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    return code;
  };
  if (!WriteRandomFile(source, options.size))
    return cleanup(Fail("cannot write " + source.string()));
  const auto expected = tierflow::storage::HashArtifact(source.string());
  if (!expected.ok()) return cleanup(Fail(std::string(expected.status().message())));
  {
    const int fd = open(netrc.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const std::string text = "machine " + HostOf(options.endpoint) + " login " +
                             options.access_key + " password " + options.secret_key + "\n";
    if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      return cleanup(Fail("cannot write " + netrc.string()));
    }
    close(fd);
  }

  // Every run works under a prefix of its own, so runs can share a bucket.
  const std::string prefix =
      "bench-transfer/" + std::to_string(getpid()) + "-" + std::to_string(std::random_device{}());
  S3Config config;
  config.tier = "bench";
  config.endpoint = options.endpoint;
  config.bucket = options.bucket;
  config.region = options.region;
  config.access_key = options.access_key;
  config.secret_key = options.secret_key;
  config.prefix = prefix;
  config.part_size = options.part_size;
  if (absl::Status created = tierflow::storage::CreateS3Bucket(config); !created.ok()) {
    return cleanup(Fail(std::string(created.message())));
  }
  std::vector<Tool> tools;
  tools.push_back({"curl --aws-sigv4", nullptr, "curl.bin", 0, {}});
  // The storage issue's targets: curl's speed single stream, 1.5x with
  // parallel parts and ranges.
  for (const auto& [parallel, goal] : {std::pair{1, 1.0}, std::pair{4, 1.5}}) {
    config.parallel = parallel;
    auto adapter = tierflow::storage::MakeS3Adapter(config);
    if (!adapter.ok()) return cleanup(Fail(std::string(adapter.status().message())));
    const std::string name = "tierflow parallel=" + std::to_string(parallel);
    tools.push_back(
        {name, std::move(*adapter), "parallel-" + std::to_string(parallel) + ".bin", goal, {}});
  }
  Adapter& checker = *tools.back().adapter;
  auto url = [&](const std::string& key) {
    return options.endpoint + "/" + options.bucket + "/" + prefix + "/" + key;
  };
  auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {
        options.curl, "--silent", "--show-error", "--fail", "--globoff", "--aws-sigv4",
        "aws:amz:" + options.region + ":s3", "--netrc-file", netrc.string(),
        // Swift's s3api refuses requests without it;
        // curl 7.88 does not hash the body itself.
        "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (Run(argv, curl_errors) == 0) return absl::OkStatus();
    return absl::UnavailableError("curl failed: " + ReadFirstLine(curl_errors));
  };

  // Every tool downloads the same two objects, stored once here: one whole
  // (curl's single PUT) and one in parts (tierflow's multipart upload, as
  // it stores any file larger than a part; Swift keeps it as a manifest of
  // segments, which it serves differently).
  std::vector<std::pair<std::string, std::string>> downloads;
  if (Listed(options.only, "whole")) downloads.emplace_back("download, stored whole", "whole.bin");
  if (Listed(options.only, "parts")) {
    downloads.emplace_back("download, stored in parts", "parts.bin");
  }
  const bool uploads = Listed(options.only, "upload");
  absl::Status stored =
      curl({"--upload-file", source.string(), "--output", "/dev/null", url("whole.bin")});
  if (stored.ok() && Listed(options.only, "parts")) {
    stored = checker.PutFile("parts.bin", source.string());
  }
  if (!stored.ok()) return cleanup(Fail(std::string(stored.message())));

  const std::vector<pid_t> server = ServerPids(options.swift_dir);
  // Runs one transfer, recording its wall time and the CPU it took here and
  // on the server.
  auto measure = [&](const std::function<absl::Status()>& transfer, Sample& sample) {
    const double client_cpu = ClientCpu();
    const double server_cpu = ServerCpu(server);
    const Clock::time_point start = Clock::now();
    absl::Status status = transfer();
    sample.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    sample.client_cpu = ClientCpu() - client_cpu;
    sample.server_cpu = ServerCpu(server) - server_cpu;
    return status;
  };

  for (int run = -1; run < options.runs; ++run) {  // run -1 warms up
    for (size_t turn = 0; turn < tools.size(); ++turn) {
      Tool& tool = tools[(turn + static_cast<size_t>(run + 1)) % tools.size()];
      Sample sample;
      absl::Status status;
      if (uploads) {
        status = measure(
            [&] {
              return tool.adapter ? tool.adapter->PutFile(tool.key, source.string())
                                  : curl({"--upload-file", source.string(), "--output", "/dev/null",
                                          url(tool.key)});
            },
            sample);
        if (!status.ok()) {
          return cleanup(Fail(tool.name + " upload: " + std::string(status.message())));
        }
        auto info = checker.Stat(tool.key);
        if (!info.ok() || info->bytes != options.size) {
          return cleanup(Fail(tool.name + " upload: the object is not " +
                              std::to_string(options.size) + " bytes"));
        }
        if (run >= 0) tool.samples["upload"].push_back(sample);
      }

      for (const auto& [direction, key] : downloads) {
        std::error_code ignored;
        fs::remove(target, ignored);
        status = measure(
            [&] {
              return tool.adapter ? tool.adapter->GetFile(key, target.string())
                                  : curl({"--output", target.string(), url(key)});
            },
            sample);
        if (!status.ok()) {
          return cleanup(Fail(tool.name + " " + direction + ": " + std::string(status.message())));
        }
        const auto got = tierflow::storage::HashArtifact(target.string());
        if (!got.ok() || got->bytes != expected->bytes || got->hash != expected->hash) {
          return cleanup(Fail(tool.name + " " + direction + ": the file differs from the source"));
        }
        if (run >= 0) tool.samples[direction].push_back(sample);
      }
    }
  }

  printf(
      "%ju bytes, parts and ranges of %ju bytes, %s, %d runs after a warm-up; every transfer "
      "verified\n\n",
      static_cast<uintmax_t>(options.size), static_cast<uintmax_t>(options.part_size),
      options.endpoint.c_str(), options.runs);
  printf(
      "| direction | tool | runs | median time | fastest | slowest | MB/s | vs curl | client CPU | "
      "server CPU | target |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  std::vector<std::string> directions;
  if (uploads) directions.push_back("upload");
  for (const auto& download : downloads) directions.push_back(download.first);
  for (const std::string& direction : directions) {
    const double curl_median = Median(tools.front().samples[direction], &Sample::seconds);
    for (Tool& tool : tools) {
      const std::vector<Sample>& samples = tool.samples[direction];
      const double median = Median(samples, &Sample::seconds);
      const double ratio = curl_median / median;
      char target_text[32] = "";
      if (tool.goal > 0) {
        snprintf(target_text, sizeof target_text, "%s (%.1fx)",
                 ratio >= tool.goal ? "met" : "MISSED", tool.goal);
      }
      char server_cpu[32] = "n/a";
      if (!server.empty()) {
        snprintf(server_cpu, sizeof server_cpu, "%.2f s", Median(samples, &Sample::server_cpu));
      }
      const auto [fastest, slowest] = std::minmax_element(
          samples.begin(), samples.end(),
          [](const Sample& a, const Sample& b) { return a.seconds < b.seconds; });
      printf("| %s | %s | %zu | %.3f s | %.3f s | %.3f s | %.0f | %.2fx | %.2f s | %s | %s |\n",
             direction.c_str(), tool.name.c_str(), samples.size(), median, fastest->seconds,
             slowest->seconds, static_cast<double>(options.size) / 1e6 / median, ratio,
             Median(samples, &Sample::client_cpu), server_cpu, target_text);
    }
  }
  for (const Tool& tool : tools) {
    if (uploads) (void)checker.Delete(tool.key);
  }
  for (const auto& download : downloads) (void)checker.Delete(download.second);
  return cleanup(0);
}
