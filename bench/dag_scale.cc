// bench/dag_scale: how `tierflow validate` and `tierflow plan` scale with the
// number of tasks, side by side with a baseline that only parses the YAML
// (yaml_parse_only), all measured in the same run. See bench/README.md.
//
// Generates pipelines of 1k, 10k and 100k tasks in three shapes into a temp
// dir, runs each command as a child process (fork/exec, stdout to
// /dev/null), and reports the median wall time (steady_clock), the median
// CPU time and the largest peak RSS (both from wait4's rusage) over the
// runs, with ratios to the baseline. A second reference, yaml_events_only, shows the floor of any
// loader built on yaml-cpp. The target: 100k tasks planned in < 1 s and
// < 300 MiB.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr char kUsage[] = R"(usage:
  dag_scale --tierflow PATH [options]   generate pipelines and measure
  dag_scale --generate-only DIR [options]   only write the pipelines to DIR

options:
  --tierflow PATH      the tierflow binary (e.g. build/cli/tierflow)
  --baseline PATH      yaml_parse_only (default: beside this program)
  --events PATH        yaml_events_only (default: beside this program)
  --sizes N,N,...      task counts (default 1000,10000,100000)
  --shapes S,S,...     wide, layered, foreach (default: all three)
  --runs N             timed runs per command (default 5 up to 10k tasks, 3 above)
  --keep DIR           write the pipelines to DIR and keep them (default: a temp dir, removed)
)";

constexpr int kLayers = 100;            // layered: number of layers
constexpr int kNeedsPerStage = 3;       // layered: parents per stage
constexpr int kForeachStages = 4;       // foreach: foreach stages (each with a gather)
constexpr uint64_t kSeed = 42;          // layered: fixed seed, same files every run
constexpr double kTargetSeconds = 1.0;  // plan of 100k tasks: wall time
constexpr double kTargetMiB = 300.0;    // plan of 100k tasks: peak RSS
constexpr int kTargetTasks = 100000;
constexpr rlim_t kCpuLimitSeconds = 300;  // a child burning more is killed

struct Pipeline {
  std::string shape;
  int tasks = 0;
  int stages = 0;
  fs::path file;
};

// ---- generation -------------------------------------------------------------

std::string StageName(std::string_view prefix, int layer, int index) {
  char buf[64];
  if (layer < 0) {
    std::snprintf(buf, sizeof buf, "%.*s%06d", static_cast<int>(prefix.size()), prefix.data(),
                  index);
  } else {
    std::snprintf(buf, sizeof buf, "%.*s%03d_%05d", static_cast<int>(prefix.size()), prefix.data(),
                  layer, index);
  }
  return buf;
}

// N independent stages.
void WriteWide(std::ostream& out, int n, Pipeline* p) {
  for (int i = 0; i < n; ++i) {
    out << "  " << StageName("s", -1, i) << ":\n"
        << "    kind: feature\n"
        << "    run: [\"true\"]\n"
        << "    outputs: {out: 1MiB}\n";
  }
  p->tasks = n;
  p->stages = n;
}

// kLayers layers of n / kLayers stages; every stage after the first layer
// needs kNeedsPerStage distinct random stages of the layer before.
void WriteLayered(std::ostream& out, int n, Pipeline* p) {
  const int width = std::max(1, n / kLayers);
  const int layers = n / width;
  std::mt19937_64 rng(kSeed);
  std::vector<int> parents;
  for (int layer = 0; layer < layers; ++layer) {
    for (int i = 0; i < width; ++i) {
      out << "  " << StageName("l", layer, i) << ":\n"
          << "    kind: clean\n";
      if (layer > 0) {
        parents.clear();
        const int want = std::min(kNeedsPerStage, width);
        while (static_cast<int>(parents.size()) < want) {
          int parent = static_cast<int>(rng() % static_cast<uint64_t>(width));
          if (std::find(parents.begin(), parents.end(), parent) == parents.end()) {
            parents.push_back(parent);
          }
        }
        out << "    needs: [";
        for (size_t k = 0; k < parents.size(); ++k) {
          out << (k ? ", " : "") << StageName("l", layer - 1, parents[k]);
        }
        out << "]\n";
      }
      out << "    run: [\"true\"]\n"
          << "    outputs: [out]\n";
    }
  }
  p->tasks = layers * width;
  p->stages = layers * width;
}

// kForeachStages stages with large `foreach: {range: [0, K]}`, each gathered
// by one stage, and one stage that reads every gather: n tasks in all.
void WriteForeach(std::ostream& out, int n, Pipeline* p) {
  const int fixed = kForeachStages + 1;  // the gathers and the final merge
  const int per_stage = std::max(1, (n - fixed) / kForeachStages);
  const int last = std::max(1, n - fixed - per_stage * (kForeachStages - 1));
  out << "  # " << kForeachStages << " foreach stages of " << per_stage << "+ items, "
      << kForeachStages << " gathers, 1 merge\n";
  for (int f = 0; f < kForeachStages; ++f) {
    const int items = f + 1 == kForeachStages ? last : per_stage;
    out << "  shard_" << f << ":\n"
        << "    kind: ingest\n"
        << "    foreach: {range: [0, " << items << "]}\n"
        << "    run: [\"true\", \"{{ item }}\"]\n"
        << "    outputs: {part: 1MiB}\n"
        << "  gather_" << f << ":\n"
        << "    kind: feature\n"
        << "    inputs: {parts: shard_" << f << ".part}\n"
        << "    run: [\"true\"]\n"
        << "    outputs: [out]\n";
  }
  out << "  merge:\n"
      << "    kind: train\n"
      << "    inputs: {";
  for (int f = 0; f < kForeachStages; ++f) {
    out << (f ? ", " : "") << "g" << f << ": gather_" << f << ".out";
  }
  out << "}\n"
      << "    run: [\"true\"]\n";
  p->tasks = per_stage * (kForeachStages - 1) + last + fixed;
  p->stages = 2 * kForeachStages + 1;
}

bool Generate(const fs::path& dir, const std::string& shape, int n, Pipeline* p) {
  p->shape = shape;
  p->file = dir / (shape + "-" + std::to_string(n) + ".yaml");
  std::ofstream out(p->file);
  if (!out) {
    std::cerr << "dag_scale: cannot write " << p->file << ": " << std::strerror(errno) << "\n";
    return false;
  }
  out << "# Generated by bench/dag_scale: shape " << shape << ", " << n << " tasks.\n"
      << "name: bench-" << shape << "-" << n << "\n"
      << "stages:\n";
  if (shape == "wide") {
    WriteWide(out, n, p);
  } else if (shape == "layered") {
    WriteLayered(out, n, p);
  } else {
    WriteForeach(out, n, p);
  }
  out.close();
  if (!out) {
    std::cerr << "dag_scale: error writing " << p->file << "\n";
    return false;
  }
  return true;
}

// ---- measurement ------------------------------------------------------------

double Seconds(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// The first line of a file, without its newline.
std::string FirstLine(FILE* file) {
  std::rewind(file);
  char line[512] = "";
  if (std::fgets(line, sizeof line, file) == nullptr) return "";
  std::string text = line;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// Runs argv as a child with stdin on /dev/null and stdout and stderr on the
// given descriptors; fills `usage` and returns the exit code (128 + signal
// when killed, 127 when it could not run). A child that burns more than
// kCpuLimitSeconds of CPU is killed, so a runaway cannot hang the benchmark.
int RunChild(const std::vector<std::string>& argv, int out_fd, int err_fd, rusage* usage) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    rlimit cpu = {kCpuLimitSeconds, kCpuLimitSeconds};
    setrlimit(RLIMIT_CPU, &cpu);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || wait4(pid, &status, 0, usage) < 0) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Sample {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system
  double max_rss_mib = 0;
  int exit_code = 0;
  std::string error;  // first line of stderr when exit_code != 0
};

// One timed run with stdout on /dev/null; wall time from fork to reaping.
Sample RunOnce(const std::vector<std::string>& argv) {
  Sample s;
  FILE* null = std::fopen("/dev/null", "w");
  FILE* err = std::tmpfile();
  if (null == nullptr || err == nullptr) {
    s.exit_code = 127;
    s.error = std::string("cannot open /dev/null or a temp file: ") + std::strerror(errno);
  } else {
    rusage usage{};
    const auto start = std::chrono::steady_clock::now();
    s.exit_code = RunChild(argv, fileno(null), fileno(err), &usage);
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s.cpu_seconds = Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
    s.max_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
    if (s.exit_code != 0) s.error = FirstLine(err);
  }
  if (null != nullptr) std::fclose(null);
  if (err != nullptr) std::fclose(err);
  return s;
}

struct Measurement {
  std::string command;  // display name
  double median_seconds = 0;
  double median_cpu_seconds = 0;
  double max_rss_mib = 0;
  int exit_code = 0;
  std::string error;
};

// One warm-up run (page cache, dynamic loader), then `runs` timed runs.
Measurement Measure(const std::string& name, const std::vector<std::string>& argv, int runs) {
  Measurement m;
  m.command = name;
  std::vector<double> times, cpu_times;
  Sample warm = RunOnce(argv);
  if (warm.exit_code != 0) {
    m.exit_code = warm.exit_code;
    m.error = warm.error;
    return m;
  }
  for (int i = 0; i < runs; ++i) {
    Sample s = RunOnce(argv);
    if (s.exit_code != 0) {
      m.exit_code = s.exit_code;
      m.error = s.error;
      return m;
    }
    times.push_back(s.seconds);
    cpu_times.push_back(s.cpu_seconds);
    m.max_rss_mib = std::max(m.max_rss_mib, s.max_rss_mib);
  }
  m.median_seconds = Median(times);
  m.median_cpu_seconds = Median(cpu_times);
  return m;
}

// ---- reporting --------------------------------------------------------------

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The first line `argv` prints on stdout (e.g. a --version banner).
std::string FirstLineOf(const std::vector<std::string>& argv) {
  FILE* out = std::tmpfile();
  FILE* null = std::fopen("/dev/null", "w");
  std::string line;
  if (out != nullptr && null != nullptr) {
    rusage usage{};
    RunChild(argv, fileno(out), fileno(null), &usage);
    line = FirstLine(out);
  }
  if (out != nullptr) std::fclose(out);
  if (null != nullptr) std::fclose(null);
  return line;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return Trim(line.substr(colon + 2));
    }
  }
  return "unknown CPU";
}

std::string Fixed(double value, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string Millis(double seconds) { return Fixed(seconds * 1000, seconds < 1 ? 1 : 0) + " ms"; }

// The 1-minute load average: how busy the shared machine was.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "unknown" : one;
}

std::string Ratio(double value, double base) {
  if (base <= 0) return "-";
  return Fixed(value / base, value / base < 10 ? 1 : 0) + "x";
}

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

int Usage(const std::string& problem) {
  std::cerr << "dag_scale: " << problem << "\n\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tierflow, baseline, events, keep, generate_only;
  std::string sizes_text = "1000,10000,100000", shapes_text = "wide,layered,foreach";
  int runs_override = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) return Usage("missing value for " + arg);
    std::string value = argv[++i];
    if (arg == "--tierflow") {
      tierflow = value;
    } else if (arg == "--baseline") {
      baseline = value;
    } else if (arg == "--events") {
      events = value;
    } else if (arg == "--sizes") {
      sizes_text = value;
    } else if (arg == "--shapes") {
      shapes_text = value;
    } else if (arg == "--runs") {
      runs_override = std::atoi(value.c_str());
      if (runs_override < 1) return Usage("--runs must be >= 1");
    } else if (arg == "--keep") {
      keep = value;
    } else if (arg == "--generate-only") {
      generate_only = value;
    } else {
      return Usage("unknown option " + arg);
    }
  }
  std::vector<int> sizes;
  for (const std::string& s : Split(sizes_text)) {
    int n = std::atoi(s.c_str());
    if (n < 1 || n > 1000000) return Usage("bad size '" + s + "' (1 to 1000000)");
    sizes.push_back(n);
  }
  std::vector<std::string> shapes = Split(shapes_text);
  for (const std::string& s : shapes) {
    if (s != "wide" && s != "layered" && s != "foreach") return Usage("unknown shape '" + s + "'");
  }
  if (generate_only.empty() && tierflow.empty()) return Usage("--tierflow PATH is required");

  std::error_code ec;
  if (generate_only.empty()) {
    const fs::path self_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
    if (baseline.empty()) baseline = (self_dir / "yaml_parse_only").string();
    if (events.empty()) events = (self_dir / "yaml_events_only").string();
    for (const std::string& binary : {baseline, events, tierflow}) {
      if (access(binary.c_str(), X_OK) != 0) {
        std::cerr << "dag_scale: " << binary << " is not an executable: " << std::strerror(errno)
                  << "\n";
        return 1;
      }
    }
    tierflow = fs::absolute(tierflow).string();
    baseline = fs::absolute(baseline).string();
    events = fs::absolute(events).string();
  }
  fs::path dir;
  bool remove_dir = false;
  if (!generate_only.empty() || !keep.empty()) {
    dir = generate_only.empty() ? keep : generate_only;
    fs::create_directories(dir, ec);
  } else {
    std::string tmpl = (fs::temp_directory_path(ec) / "dag_scale.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::cerr << "dag_scale: mkdtemp: " << std::strerror(errno) << "\n";
      return 1;
    }
    dir = tmpl;
    remove_dir = true;
  }

  std::vector<Pipeline> pipelines;
  for (int n : sizes) {
    for (const std::string& shape : shapes) {
      Pipeline p;
      if (!Generate(dir, shape, n, &p)) {
        if (remove_dir) fs::remove_all(dir, ec);
        return 1;
      }
      pipelines.push_back(p);
    }
  }
  if (!generate_only.empty()) {
    for (const Pipeline& p : pipelines) {
      std::cout << p.file.string() << ": " << p.tasks << " tasks, " << p.stages << " stages\n";
    }
    return 0;
  }

  utsname uts{};
  uname(&uts);
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::cout
      << "dag_scale " << date << "\n"
      << "machine: " << CpuModel() << ", " << sysconf(_SC_NPROCESSORS_ONLN) << " cores, "
      << uts.sysname << " " << uts.release << " " << uts.machine << "\n"
      << "tierflow: " << tierflow << " (" << FirstLineOf({tierflow, "--version"}) << ")\n"
      << "baseline: " << baseline << "\n"
      << "yaml-cpp floor: " << events << "\n"
      << "load average at start: " << LoadAverage() << "\n"
      << "time: median wall time of the runs (fork to reaping); CPU: median user+system "
         "time; RSS: largest peak RSS of the runs\n\n"
      << "| shape | tasks | file | command | runs | median time | median CPU | peak RSS | time vs "
         "baseline | RSS vs baseline | target |\n"
      << "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n";

  bool all_ran = true;
  std::vector<std::string> target_lines;
  for (const Pipeline& p : pipelines) {
    const int runs = runs_override ? runs_override : (p.tasks <= 10000 ? 5 : 3);
    const std::string file = p.file.string();
    const double kib = static_cast<double>(fs::file_size(p.file, ec)) / 1024.0;
    const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
        {"yaml_parse_only (baseline)", {baseline, file}},
        {"yaml_events_only", {events, file}},
        {"tierflow validate", {tierflow, "validate", file}},
        {"tierflow plan --output json", {tierflow, "plan", "--output", "json", file}},
    };
    Measurement base;
    for (size_t c = 0; c < commands.size(); ++c) {
      Measurement m = Measure(commands[c].first, commands[c].second, runs);
      if (c == 0) base = m;
      std::cout << "| " << p.shape << " | " << p.tasks << " | "
                << (kib < 1024 ? Fixed(kib, 0) + " KiB" : Fixed(kib / 1024, 1) + " MiB") << " | "
                << m.command << " | " << runs << " | ";
      if (m.exit_code != 0) {
        all_ran = false;
        std::cout << "FAILED (exit " << m.exit_code << ": " << m.error << ") | | | | | |\n";
        continue;
      }
      std::string target;
      if (c + 1 == commands.size() && p.tasks >= kTargetTasks) {
        const bool met = m.median_seconds < kTargetSeconds && m.max_rss_mib < kTargetMiB;
        target = met ? "met" : "MISSED";
        target_lines.push_back(p.shape + " " + std::to_string(p.tasks) +
                               " tasks: " + Fixed(m.median_seconds, 3) + " s, " +
                               Fixed(m.max_rss_mib, 1) + " MiB: " + target);
      }
      std::cout << Millis(m.median_seconds) << " | " << Millis(m.median_cpu_seconds) << " | "
                << Fixed(m.max_rss_mib, 1) << " MiB | "
                << (c == 0 ? "1x" : Ratio(m.median_seconds, base.median_seconds)) << " | "
                << (c == 0 ? "1x" : Ratio(m.max_rss_mib, base.max_rss_mib)) << " | " << target
                << " |\n";
      std::cout.flush();
    }
  }
  std::cout << "\ntarget: " << kTargetTasks << " tasks planned in < " << Fixed(kTargetSeconds, 0)
            << " s and < " << Fixed(kTargetMiB, 0) << " MiB\n";
  for (const std::string& line : target_lines) std::cout << "  " << line << "\n";
  if (target_lines.empty())
    std::cout << "  (no plan of >= " << kTargetTasks << " tasks measured)\n";
  std::cout << "load average at end: " << LoadAverage() << "\n";

  if (remove_dir) fs::remove_all(dir, ec);
  return all_ran ? 0 : 1;
}
