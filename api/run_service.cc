#include "api/run_service.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "api/text_table.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

using scheduler::ArtifactRow;
using scheduler::AttemptRow;
using scheduler::CopyRow;
using scheduler::Database;
using scheduler::EngineStatus;
using scheduler::LineageEdge;
using scheduler::LineageNode;
using scheduler::RunSummary;
using scheduler::TaskRow;
using Json = nlohmann::ordered_json;

absl::StatusOr<std::unique_ptr<Database>> OpenReadOnly(const std::string& db) {
  return scheduler::OpenStoreReadOnly(scheduler::ResolveDatabasePath(db));
}

// ---------------------------------------------------------------- text

// `text` with control characters written as C escapes, so a name or a
// message can neither break a table's rows nor drive the terminal. Other
// bytes (UTF-8 names) stay as they are.
std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += CEscape(std::string_view(&c, 1));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string LocalTime(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm local;
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string OptionalTime(const std::optional<int64_t>& ms) { return ms ? LocalTime(*ms) : "-"; }

std::string DurationText(const std::optional<int64_t>& ms) {
  return ms ? FormatDuration(Duration(*ms)) : "-";
}

std::optional<int64_t> Between(const std::optional<int64_t>& start,
                               const std::optional<int64_t>& end) {
  if (!start || !end) return std::nullopt;
  return std::max<int64_t>(0, *end - *start);
}

// "xxh3:0123456789ab": the algorithm and the first 12 hex digits.
std::string ShortHash(std::string_view hash) {
  const size_t colon = hash.find(':');
  const size_t digits = colon == std::string_view::npos ? 0 : colon + 1;
  return Printable(hash.substr(0, digits + 12));
}

std::string SizeText(const ArtifactRow& artifact) {
  std::string text = FormatSize(static_cast<uint64_t>(std::max<int64_t>(0, artifact.bytes)));
  if (artifact.files > 1) text += StrCat(" in ", artifact.files, " files");
  return text;
}

std::string CopiesText(const std::vector<CopyRow>& copies) {
  std::string text;
  for (const CopyRow& copy : copies) {
    if (!text.empty()) text += ", ";
    text += Printable(StrCat(copy.tier, ":", copy.uri));
    std::vector<std::string> notes;
    if (copy.state == "released") {
      // A volatile home released after its last reader: not a home any more.
      notes.push_back("released, recomputed when needed");
    } else {
      if (copy.role != "home") notes.push_back(Printable(copy.role));
      if (copy.state != "present") notes.push_back(Printable(copy.state));
    }
    if (!notes.empty()) {
      text += " (" + notes[0];
      for (size_t i = 1; i < notes.size(); ++i) text += ", " + notes[i];
      text += ")";
    }
  }
  return text.empty() ? "-" : text;
}

// "0", "1", "SIGTERM" or "-": how the attempt's process ended.
std::string ExitText(const AttemptRow& attempt) {
  if (attempt.signal) {
    const int64_t signal = *attempt.signal;
    const char* name =
        signal > 0 && signal < NSIG ? sigabbrev_np(static_cast<int>(signal)) : nullptr;
    return name != nullptr ? StrCat("SIG", name) : StrCat("signal ", signal);
  }
  if (attempt.exit_code) return StrCat(*attempt.exit_code);
  return "-";
}

std::string AttemptRef(const std::string& run, const std::string& task, int64_t number,
                       const std::string& context_run) {
  return Printable(StrCat(run == context_run ? "" : StrCat(run, "/"), task, " attempt ", number));
}

// What the attempt row's MESSAGE cell says: why it ended, or what it
// reused.
std::string AttemptMessage(const AttemptRow& attempt) {
  if (!attempt.cached_from) return Printable(attempt.message);
  std::string text = attempt.cached_from_number > 0
                         ? StrCat("reused ",
                                  AttemptRef(attempt.cached_from_run, attempt.cached_from_task,
                                             attempt.cached_from_number, attempt.run_id),
                                  " (#", *attempt.cached_from, ")")
                         : StrCat("reused attempt #", *attempt.cached_from);
  if (!attempt.message.empty()) text += ": " + Printable(attempt.message);
  return text;
}

std::string RunStateText(const RunSummary& run) {
  switch (run.engine) {
    case EngineStatus::kGone:
      return "running (engine gone)";
    case EngineStatus::kOtherHost:
      return StrCat("running (on ", Printable(run.engine_host), ")");
    default:
      return Printable(run.state);
  }
}

std::string CountsText(const scheduler::RunCounts& c) {
  const std::pair<std::string_view, uint32_t> states[] = {
      {"succeeded", c.succeeded}, {"cached", c.cached},
      {"running", c.running},     {"retrying", c.retrying},
      {"queued", c.queued},       {"pending", c.pending},
      {"failed", c.failed},       {"upstream_failed", c.upstream_failed},
      {"cancelled", c.cancelled},
  };
  std::string text = StrCat(c.total, c.total == 1 ? " task" : " tasks");
  bool first = true;
  for (const auto& [name, count] : states) {
    if (count == 0) continue;
    text += StrCat(first ? ": " : ", ", count, " ", name);
    first = false;
  }
  return text;
}

using Table = TextTable;

// ---------------------------------------------------------------- JSON

Json Optional(const std::optional<int64_t>& value) { return value ? Json(*value) : Json(nullptr); }
Json OptionalText(const std::string& value) { return value.empty() ? Json(nullptr) : Json(value); }

void Dump(const Json& json, std::ostream& out) {
  // Invalid UTF-8 in a name or message becomes U+FFFD: the output stays JSON.
  out << json.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

Json RunJson(const RunSummary& run) {
  Json params = Json::object();
  for (const auto& [name, value] : run.params) params[name] = value;
  const scheduler::RunCounts& c = run.counts;
  Json alive = run.engine == EngineStatus::kOtherHost ? Json(nullptr)
                                                      : Json(run.engine == EngineStatus::kAlive);
  return Json{{"id", run.id},
              {"pipeline", run.pipeline},
              {"file", run.file},
              {"working_dir", run.working_dir},
              {"params", params},
              {"state", run.state},
              {"engine", std::string(scheduler::EngineStatusName(run.engine))},
              {"engine_alive", alive},
              {"engine_pid", Optional(run.engine_pid)},
              {"engine_host", OptionalText(run.engine_host)},
              {"slots", run.slots},
              {"created_at_ms", run.created_at_ms},
              {"started_at_ms", Optional(run.started_at_ms)},
              {"finished_at_ms", Optional(run.finished_at_ms)},
              {"duration_ms", Optional(run.duration_ms)},
              {"cancel_requested", run.cancel_requested},
              {"message", run.message},
              {"tasks",
               {{"total", c.total},
                {"done", c.done()},
                {"pending", c.pending},
                {"queued", c.queued},
                {"running", c.running},
                {"retrying", c.retrying},
                {"succeeded", c.succeeded},
                {"cached", c.cached},
                {"failed", c.failed},
                {"upstream_failed", c.upstream_failed},
                {"cancelled", c.cancelled}}}};
}

Json CopyJson(const CopyRow& copy) {
  return Json{{"id", copy.id},          {"tier", copy.tier},
              {"uri", copy.uri},        {"role", copy.role},
              {"bytes", copy.bytes},    {"content_hash", copy.content_hash},
              {"state", copy.state},    {"created_at_ms", copy.created_at_ms},
              {"message", copy.message}};
}

// The artifact's fields after `id_field` (its row id).
Json ArtifactJson(const ArtifactRow& artifact, std::string_view id_field) {
  Json copies = Json::array();
  for (const CopyRow& copy : artifact.copies) copies.push_back(CopyJson(copy));
  return Json{{std::string(id_field), artifact.id},
              {"ref", artifact.Ref()},
              {"run_id", artifact.run_id},
              {"task_id", artifact.task_id},
              {"name", artifact.name},
              {"attempt_id", artifact.attempt_id},
              {"content_hash", artifact.content_hash},
              {"bytes", artifact.bytes},
              {"files", artifact.files},
              {"created_at_ms", artifact.created_at_ms},
              {"copies", copies}};
}

Json ReadsJson(const AttemptRow& attempt) {
  Json reads = Json::array();
  for (const AttemptRow::Read& read : attempt.reads) {
    reads.push_back({{"input", read.input}, {"tier", read.tier}, {"bytes", read.bytes}});
  }
  return reads;
}

Json AttemptJson(const AttemptRow& attempt) {
  Json command = Json::parse(attempt.command, nullptr, /*allow_exceptions=*/false);
  if (command.is_discarded()) command = attempt.command;
  Json cached_from_ref = nullptr;
  if (attempt.cached_from && attempt.cached_from_number > 0) {
    cached_from_ref = Json{{"run_id", attempt.cached_from_run},
                           {"task_id", attempt.cached_from_task},
                           {"number", attempt.cached_from_number}};
  }
  return Json{{"id", attempt.id},
              {"number", attempt.number},
              {"state", attempt.state},
              {"worker", attempt.worker},
              {"pid", Optional(attempt.pid)},
              {"command", command},
              {"cache_key", OptionalText(attempt.cache_key)},
              {"cached_from", Optional(attempt.cached_from)},
              {"cached_from_ref", cached_from_ref},
              {"started_at_ms", attempt.started_at_ms},
              {"finished_at_ms", Optional(attempt.finished_at_ms)},
              {"duration_ms", Optional(Between(attempt.started_at_ms, attempt.finished_at_ms))},
              {"exit_code", Optional(attempt.exit_code)},
              {"signal", Optional(attempt.signal)},
              {"message", attempt.message},
              {"log_path", OptionalText(attempt.log_path)},
              {"log_bytes", Optional(attempt.log_bytes)},
              {"input_wait_ms", Optional(attempt.input_wait_ms)},
              {"data_wait_ms", Optional(attempt.data_wait_ms)},
              {"io_wait_ms", Optional(attempt.io_wait_ms)},
              {"read_bytes", Optional(attempt.read_bytes)},
              {"write_bytes", Optional(attempt.write_bytes)},
              {"reads", ReadsJson(attempt)}};
}

Json TaskJson(const TaskRow& task) {
  Json attempts = Json::array();
  for (const AttemptRow& attempt : task.attempts) attempts.push_back(AttemptJson(attempt));
  Json outputs = Json::array();
  for (const ArtifactRow& artifact : task.outputs) outputs.push_back(ArtifactJson(artifact, "id"));
  return Json{{"id", task.id},
              {"seq", task.seq},
              {"stage", task.stage},
              {"kind", task.kind},
              {"item", task.item ? Json(*task.item) : Json(nullptr)},
              {"item_index", task.item_index},
              {"layer", task.layer},
              {"state", task.state},
              {"attempt_count", task.attempt_count},
              {"cache_key", OptionalText(task.cache_key)},
              {"started_at_ms", Optional(task.started_at_ms)},
              {"finished_at_ms", Optional(task.finished_at_ms)},
              {"duration_ms", Optional(Between(task.started_at_ms, task.finished_at_ms))},
              {"message", task.message},
              {"attempts", attempts},
              {"outputs", outputs}};
}

// ------------------------------------------------------------- lineage

// The artifact's reference, without the run when it is `context_run`'s.
// Raw: callers escape it for where it goes.
std::string ArtifactLabel(const ArtifactRow& artifact, const std::string& context_run) {
  return artifact.run_id == context_run ? StrCat(artifact.task_id, "/", artifact.name)
                                        : artifact.Ref();
}

std::string AttemptLabel(const AttemptRow& attempt, const std::string& context_run) {
  return StrCat(AttemptRef(attempt.run_id, attempt.task_id, attempt.number, context_run), " (",
                Printable(attempt.state), ")");
}

class LineageText {
 public:
  LineageText(const LineageGraph& graph, std::ostream& out) : graph_(graph), out_(out) {
    for (const LineageEdge& edge : graph.edges) {
      out_edges_[edge.from].push_back(&edge);
      in_edges_[edge.to].push_back(&edge);
    }
  }

  void Render() {
    if (graph_.root) {
      const LineageNode root{LineageNode::Type::kArtifact, *graph_.root};
      const ArtifactRow& artifact = graph_.artifacts.at(*graph_.root);
      out_ << Printable(artifact.Ref()) << ArtifactDetails(artifact) << '\n';
      printed_.insert(root);
      if (graph_.direction != LineageDirection::kDownstream) Section(root, /*upstream=*/true);
      if (graph_.direction != LineageDirection::kUpstream) Section(root, /*upstream=*/false);
      return;
    }
    out_ << "run " << Printable(graph_.run_id) << ": "
         << StrCat(RunAttempts(), " attempts, ", graph_.artifacts.size(), " artifacts") << '\n';
    // Sources: this run's nodes that nothing of this run leads to.
    std::vector<LineageNode> roots;
    for (const auto& [id, attempt] : graph_.attempts) {
      if (attempt.run_id == graph_.run_id && IsSource({LineageNode::Type::kAttempt, id})) {
        roots.push_back({LineageNode::Type::kAttempt, id});
      }
    }
    for (const auto& [id, artifact] : graph_.artifacts) {
      if (artifact.run_id == graph_.run_id && IsSource({LineageNode::Type::kArtifact, id})) {
        roots.push_back({LineageNode::Type::kArtifact, id});
      }
    }
    for (const LineageNode& root : roots) Tree(root, /*upstream=*/false, 1, "");
  }

 private:
  size_t RunAttempts() const {
    return static_cast<size_t>(
        std::count_if(graph_.attempts.begin(), graph_.attempts.end(),
                      [&](const auto& entry) { return entry.second.run_id == graph_.run_id; }));
  }

  bool IsSource(const LineageNode& node) const {
    auto in = in_edges_.find(node);
    if (in == in_edges_.end()) return true;
    return std::none_of(in->second.begin(), in->second.end(), [&](const LineageEdge* edge) {
      return RunOf(edge->from) == graph_.run_id;
    });
  }

  const std::string& RunOf(const LineageNode& node) const {
    return node.type == LineageNode::Type::kArtifact ? graph_.artifacts.at(node.id).run_id
                                                     : graph_.attempts.at(node.id).run_id;
  }

  static std::string ArtifactDetails(const ArtifactRow& artifact) {
    return StrCat(" #", artifact.id, "  ", SizeText(artifact), "  ",
                  ShortHash(artifact.content_hash), "  ", CopiesText(artifact.copies));
  }

  std::string Label(const LineageNode& node) const {
    if (node.type == LineageNode::Type::kArtifact) {
      const ArtifactRow& artifact = graph_.artifacts.at(node.id);
      return Printable(ArtifactLabel(artifact, graph_.run_id)) + ArtifactDetails(artifact);
    }
    // Attempts carry no "#ID": that is how artifacts are named.
    const AttemptRow& attempt = graph_.attempts.at(node.id);
    std::string label = AttemptLabel(attempt, graph_.run_id);
    // A run's graph shows no reuse edges of its own (the reused attempt is
    // in another run), so it says here where a cached attempt's outputs
    // came from.
    if (!graph_.root && attempt.cached_from) {
      auto original = graph_.attempts.find(*attempt.cached_from);
      if (original != graph_.attempts.end()) {
        label += StrCat(", reusing ", AttemptLabel(original->second, graph_.run_id));
      }
    }
    return label;
  }

  // The words before a child: how it relates to its parent in the tree.
  static std::string_view Relation(const LineageEdge& edge, bool upstream) {
    switch (edge.kind) {
      case LineageEdge::Kind::kConsumed:
        return upstream ? "consumed " : "consumed by ";
      case LineageEdge::Kind::kProduced:
        return upstream ? "produced by " : "produced ";
      case LineageEdge::Kind::kReused:
        return upstream ? "reused outputs of " : "reused by ";
    }
    return "";
  }

  void Section(const LineageNode& root, bool upstream) {
    out_ << (upstream ? "upstream\n" : "downstream\n");
    const auto& edges = upstream ? in_edges_ : out_edges_;
    if (edges.find(root) == edges.end()) {
      out_ << "  (none)\n";
      return;
    }
    Children(root, upstream, 1);
  }

  // Depth-first with an explicit stack: lineage chains can be long.
  struct Frame {
    LineageNode node;
    size_t level;
    std::string relation;
  };

  void Children(const LineageNode& node, bool upstream, size_t level) {
    std::vector<Frame> stack;
    Push(stack, node, upstream, level);
    Drain(stack, upstream);
  }

  void Tree(const LineageNode& root, bool upstream, size_t level, std::string relation) {
    std::vector<Frame> stack{{root, level - 1, std::move(relation)}};
    Drain(stack, upstream);
  }

  void Push(std::vector<Frame>& stack, const LineageNode& node, bool upstream, size_t level) {
    const auto& edges = upstream ? in_edges_ : out_edges_;
    auto found = edges.find(node);
    if (found == edges.end()) return;
    for (auto edge = found->second.rbegin(); edge != found->second.rend(); ++edge) {
      const LineageNode child = upstream ? (*edge)->from : (*edge)->to;
      stack.push_back({child, level, std::string(Relation(**edge, upstream))});
    }
  }

  void Drain(std::vector<Frame>& stack, bool upstream) {
    while (!stack.empty()) {
      Frame frame = std::move(stack.back());
      stack.pop_back();
      out_ << std::string(2 * frame.level, ' ') << frame.relation << Label(frame.node);
      if (!printed_.insert(frame.node).second) {
        out_ << " (see above)\n";
        continue;
      }
      out_ << '\n';
      Push(stack, frame.node, upstream, frame.level + 1);
    }
  }

  const LineageGraph& graph_;
  std::ostream& out_;
  std::map<LineageNode, std::vector<const LineageEdge*>> out_edges_;
  std::map<LineageNode, std::vector<const LineageEdge*>> in_edges_;
  std::set<LineageNode> printed_;
};

// `text` as the inside of a DOT quoted string: quotes and backslashes
// escaped, a newline as the \n line break, other control characters shown
// as escapes, bytes that are not UTF-8 replaced by U+FFFD (Graphviz wants
// UTF-8). Nothing in it can end the string or start an HTML label.
std::string DotEscape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      if (byte == '"') {
        out += "\\\"";
      } else if (byte == '\\') {
        out += "\\\\";
      } else if (byte == '\n') {
        out += "\\n";
      } else if (byte < 0x20 || byte == 0x7f) {
        out += "\\\\" + CEscape(text.substr(i, 1)).substr(1);
      } else {
        out.push_back(static_cast<char>(byte));
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: lead byte, then 1-3 continuation bytes.
    size_t length = byte >= 0xf0 && byte <= 0xf4 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc2 ? 2 : 0;
    if (byte > 0xf4) length = 0;
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

std::string DotNode(const LineageGraph& graph, const LineageNode& node) {
  std::string attributes;
  if (node.type == LineageNode::Type::kArtifact) {
    const ArtifactRow& artifact = graph.artifacts.at(node.id);
    attributes = StrCat("shape=box, label=\"", DotEscape(ArtifactLabel(artifact, graph.run_id)),
                        "\\n", DotEscape(SizeText(artifact)), " ",
                        DotEscape(ShortHash(artifact.content_hash)), "\"");
    if (graph.root == node.id) attributes += ", penwidth=2";
  } else {
    const AttemptRow& attempt = graph.attempts.at(node.id);
    const std::string run =
        attempt.run_id == graph.run_id ? "" : StrCat(DotEscape(attempt.run_id), "/");
    attributes = StrCat("shape=ellipse, label=\"", run, DotEscape(attempt.task_id), "\\nattempt ",
                        attempt.number, " ", DotEscape(attempt.state), "\"");
    if (attempt.state == "failed" || attempt.state == "timed_out" || attempt.state == "lost") {
      attributes += ", color=red";
    } else if (attempt.state == "cached") {
      attributes += ", style=dashed";
    } else if (attempt.state == "not_started") {
      attributes += ", style=dotted";
    }
  }
  return StrCat("  \"", node.Key(), "\" [", attributes, "];\n");
}

}  // namespace

absl::StatusOr<RunList> ListRuns(const std::string& db, const RunFilter& filter) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  return scheduler::ListRuns(*store, filter, WallClockMs());
}

absl::StatusOr<RunDetail> ShowRun(const std::string& db, const std::string& run) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*store, run));
  return scheduler::GetRunDetail(*store, run_id, WallClockMs());
}

absl::StatusOr<LineageGraph> GetLineage(const std::string& db, const std::string& target,
                                        LineageDirection direction, std::optional<int64_t> depth) {
  const bool artifact = scheduler::IsArtifactRef(target);
  if (!artifact && (direction != LineageDirection::kBoth || depth)) {
    return absl::InvalidArgumentError(
        StrCat("--upstream, --downstream and --depth walk from an artifact (RUN/TASK/OUTPUT or "
               "#ID); '",
               CEscape(target), "' names a run, whose whole lineage is shown"));
  }
  std::optional<scheduler::ArtifactRef> ref;
  if (artifact) {
    TF_ASSIGN_OR_RETURN(ref, scheduler::ParseArtifactRef(target));
  }
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  if (!artifact) {
    TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*store, target));
    return scheduler::RunLineage(*store, run_id);
  }
  TF_ASSIGN_OR_RETURN(ArtifactRow root, scheduler::ResolveArtifact(*store, *ref));
  return scheduler::ArtifactLineage(*store, root.id, direction, depth);
}

// ------------------------------------------------------------------ logs

namespace {

// Reads a growing file from where it left off.
class Tail {
 public:
  explicit Tail(std::string path) : path_(std::move(path)) {}
  ~Tail() {
    if (fd_ >= 0) close(fd_);
  }
  Tail(const Tail&) = delete;
  Tail& operator=(const Tail&) = delete;

  const std::string& path() const { return path_; }
  bool open() const { return fd_ >= 0; }

  // Opens the file if it exists now; errors other than "not there yet".
  absl::Status TryOpen() {
    if (fd_ >= 0) return absl::OkStatus();
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0 || errno == ENOENT) return absl::OkStatus();
    return absl::PermissionDeniedError(
        StrCat("cannot read the log ", path_, ": ", std::strerror(errno)));
  }

  // Copies what was appended since the last call to `out`.
  absl::Status Drain(std::ostream& out) {
    if (fd_ < 0) return absl::OkStatus();
    struct stat info;
    // A log rewritten from the start (truncated) is read again from there.
    if (fstat(fd_, &info) == 0 && info.st_size < offset_) {
      offset_ = 0;
    }
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = pread(fd_, buffer, sizeof buffer, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return absl::DataLossError(
            StrCat("cannot read the log ", path_, ": ", std::strerror(errno)));
      }
      if (n == 0) break;
      out.write(buffer, n);
      offset_ += n;
    }
    out.flush();
    if (!out) return absl::UnavailableError("the output was closed");
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_ = -1;
  off_t offset_ = 0;
};

// An inotify instance watching one log and its folder: wakes on appends,
// on the writer closing the log, and on files appearing in the folder (the
// log itself, or the next attempt's).
class LogWatch {
 public:
  LogWatch() : fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}
  ~LogWatch() {
    if (fd_ >= 0) close(fd_);
  }
  LogWatch(const LogWatch&) = delete;
  LogWatch& operator=(const LogWatch&) = delete;

  // (Re)points the watches at `path` and its folder; either may not exist
  // yet, in which case the bounded wait stands in for the event.
  void Watch(const std::string& path) {
    if (fd_ < 0) return;
    for (int wd : watches_) inotify_rm_watch(fd_, wd);
    watches_.clear();
    file_watch_ = -1;
    const std::string folder = std::filesystem::path(path).parent_path().string();
    if (int wd =
            inotify_add_watch(fd_, folder.empty() ? "." : folder.c_str(), IN_CREATE | IN_MOVED_TO);
        wd >= 0) {
      watches_.push_back(wd);
    }
    WatchFile(path);
  }

  void WatchFile(const std::string& path) {
    if (fd_ < 0 || file_watch_ >= 0) return;
    file_watch_ = inotify_add_watch(fd_, path.c_str(),
                                    IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF);
    if (file_watch_ >= 0) watches_.push_back(file_watch_);
  }

  // Waits up to `timeout` for events. Returns true when one suggests the
  // attempt may have ended (the log closed by its writer, a new file in the
  // folder): worth re-checking the store at once.
  bool Wait(std::chrono::milliseconds timeout) {
    if (fd_ < 0) {
      poll(nullptr, 0, static_cast<int>(timeout.count()));
      return false;
    }
    pollfd fds{fd_, POLLIN, 0};
    if (poll(&fds, 1, static_cast<int>(timeout.count())) <= 0) return false;
    bool check = false;
    alignas(inotify_event) char buffer[4096];
    for (;;) {
      const ssize_t n = read(fd_, buffer, sizeof buffer);
      if (n <= 0) break;
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
        if ((event->mask &
             (IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
          check = true;
        }
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      }
    }
    return check;
  }

 private:
  int fd_;
  int file_watch_ = -1;
  std::vector<int> watches_;
};

bool TaskMayRunAgain(std::string_view state) {
  return state == scheduler::task_state::kRetrying || state == scheduler::task_state::kQueued ||
         state == scheduler::task_state::kPending || state == scheduler::task_state::kRunning;
}

// A cached attempt ran nothing: the log worth showing is that of the
// attempt whose outputs it reused (following the chain, boundedly).
absl::StatusOr<AttemptRow> AttemptWithLog(Database& db, AttemptRow attempt, std::ostream& notes) {
  for (int hops = 0; attempt.log_path.empty() && attempt.cached_from && hops < 16; ++hops) {
    TF_ASSIGN_OR_RETURN(AttemptRow original, scheduler::GetAttempt(db, *attempt.cached_from));
    notes << Printable(StrCat(attempt.task_id, " attempt ", attempt.number, " of run ",
                              attempt.run_id, " ran nothing: it reused the outputs of ",
                              original.run_id, "/", original.task_id, " attempt ", original.number,
                              " (#", original.id, "), whose log follows"))
          << '\n';
    attempt = std::move(original);
  }
  if (attempt.log_path.empty()) {
    return absl::NotFoundError(StrCat(attempt.task_id, " attempt ", attempt.number, " of run ",
                                      attempt.run_id, " has no log"));
  }
  return attempt;
}

absl::Status PrintWhole(const AttemptRow& attempt, std::ostream& out, std::ostream& notes) {
  Tail tail(attempt.log_path);
  TF_RETURN_IF_ERROR(tail.TryOpen());
  if (!tail.open()) {
    if (attempt.state == scheduler::attempt_state::kRunning) {
      notes << Printable(StrCat(attempt.task_id, " attempt ", attempt.number,
                                " has written nothing yet (follow it with -f)"))
            << '\n';
      return absl::OkStatus();
    }
    if (attempt.log_bytes == 0) {  // no file is made for an attempt that writes nothing
      notes << Printable(StrCat(attempt.task_id, " attempt ", attempt.number, " wrote nothing"))
            << '\n';
      return absl::OkStatus();
    }
    return absl::NotFoundError(StrCat("the log of ", attempt.task_id, " attempt ", attempt.number,
                                      " of run ", attempt.run_id, " is gone: ", attempt.log_path));
  }
  return tail.Drain(out);
}

absl::Status Follow(Database& db, const LogRequest& request, AttemptRow attempt, std::ostream& out,
                    std::ostream& notes) {
  const bool latest = request.attempt == 0;
  LogWatch watch;
  auto tail = std::make_unique<Tail>(attempt.log_path);
  watch.Watch(tail->path());
  auto next_check = std::chrono::steady_clock::now();
  for (;;) {
    // Watch first, then open and read: nothing appended in between is lost.
    TF_RETURN_IF_ERROR(tail->TryOpen());
    if (tail->open()) watch.WatchFile(tail->path());
    TF_RETURN_IF_ERROR(tail->Drain(out));

    if (std::chrono::steady_clock::now() >= next_check) {
      TF_ASSIGN_OR_RETURN(scheduler::RunStatus run, scheduler::GetRunStatus(db, attempt.run_id));
      TF_ASSIGN_OR_RETURN(AttemptRow current, scheduler::GetAttempt(db, attempt.id));
      const bool running = current.state == scheduler::attempt_state::kRunning;
      const bool run_going = run.state == scheduler::run_state::kRunning;
      if (!running || !run_going || run.engine == EngineStatus::kGone) {
        // The attempt's writes all happened before its state changed.
        TF_RETURN_IF_ERROR(tail->TryOpen());
        TF_RETURN_IF_ERROR(tail->Drain(out));
        if (latest) {
          TF_ASSIGN_OR_RETURN(AttemptRow last,
                              scheduler::FindAttempt(db, attempt.run_id, attempt.task_id));
          if (last.number > attempt.number) {
            notes << Printable(StrCat("--- ", last.task_id, " attempt ", last.number, " (",
                                      last.state, ")"))
                  << '\n';
            if (last.log_path.empty()) {
              // Cached: it ran nothing and the task is done.
              TF_ASSIGN_OR_RETURN(AttemptRow original, AttemptWithLog(db, std::move(last), notes));
              return PrintWhole(original, out, notes);
            }
            attempt = std::move(last);
            tail = std::make_unique<Tail>(attempt.log_path);
            watch.Watch(tail->path());
            continue;  // next_check is due: the new attempt is checked at once
          }
        }
        if (!run_going) return absl::OkStatus();
        if (run.engine == EngineStatus::kGone) {
          notes << Printable(StrCat("the engine of run ", attempt.run_id,
                                    " is gone; stopped following (resume with: tierflow resume ",
                                    attempt.run_id, ")"))
                << '\n';
          return absl::OkStatus();
        }
        if (!latest) return absl::OkStatus();
        TF_ASSIGN_OR_RETURN(TaskRow task, scheduler::FindTask(db, attempt.run_id, attempt.task_id));
        if (!TaskMayRunAgain(task.state)) return absl::OkStatus();
        // Retrying: the next attempt's log will appear in the same folder.
      }
      next_check = std::chrono::steady_clock::now() + request.recheck;
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_check - std::chrono::steady_clock::now());
    if (watch.Wait(std::max(wait, std::chrono::milliseconds(0)))) {
      next_check = std::chrono::steady_clock::now();
    }
  }
}

}  // namespace

absl::Status WriteLog(const LogRequest& request, std::ostream& out, std::ostream& notes) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenReadOnly(request.db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, request.run));
  TF_ASSIGN_OR_RETURN(AttemptRow attempt,
                      scheduler::FindAttempt(*db, run_id, request.task, request.attempt));
  // A cached attempt ran nothing and is over: show the log it stands for.
  const bool cached = attempt.log_path.empty();
  TF_ASSIGN_OR_RETURN(attempt, AttemptWithLog(*db, std::move(attempt), notes));
  if (!request.follow || cached) return PrintWhole(attempt, out, notes);
  return Follow(*db, request, std::move(attempt), out, notes);
}

// ------------------------------------------------------------- renderers

void RenderRunsText(const RunList& list, std::ostream& out) {
  if (list.runs.empty()) {
    out << "no runs\n";
    return;
  }
  Table table({"RUN", "PIPELINE", "STATE", "TASKS", "FAILED", "STARTED", "DURATION"});
  for (const RunSummary& run : list.runs) {
    table.Add({Printable(run.id), Printable(run.pipeline), RunStateText(run),
               StrCat(run.counts.done(), "/", run.counts.total), StrCat(run.counts.failed),
               LocalTime(run.started_at_ms.value_or(run.created_at_ms)),
               DurationText(run.duration_ms)});
  }
  table.Write(out);
  bool blank = false;
  for (const RunSummary& run : list.runs) {
    if (run.engine != EngineStatus::kGone) continue;
    if (!blank) out << '\n';
    blank = true;
    out << Printable(run.id) << ": its tierflow process"
        << (run.engine_pid ? StrCat(" (pid ", *run.engine_pid, ")") : "")
        << " is gone; resume with: tierflow resume " << Printable(run.id) << '\n';
  }
  if (static_cast<int64_t>(list.runs.size()) < list.total) {
    out << (blank ? "" : "\n") << "showing " << list.runs.size() << " of " << list.total
        << " runs (--limit 0 shows all)\n";
  }
}

void RenderRunsJson(const RunList& list, std::ostream& out) {
  Json runs = Json::array();
  for (const RunSummary& run : list.runs) runs.push_back(RunJson(run));
  Dump(Json{{"runs", runs}, {"total", list.total}}, out);
}

// How the latest attempt of each task that ran spent its time on data, and
// the advice for those that waited more than 5% of it (DESIGN.md: a few
// percent waiting is a bottleneck).
struct DataWait {
  const TaskRow* task = nullptr;
  const AttemptRow* attempt = nullptr;
  int64_t waited_ms = 0;  // for copies before it started, and for data while it ran
  int64_t total_ms = 0;   // its run time and the wait before it started
  std::string advice;
};

std::vector<DataWait> DataWaits(const RunDetail& detail) {
  std::vector<DataWait> waits;
  for (const TaskRow& task : detail.tasks) {
    if (task.attempts.empty()) continue;
    const AttemptRow& attempt = task.attempts.back();
    if (!attempt.data_wait_ms && !attempt.input_wait_ms) continue;
    DataWait wait;
    wait.task = &task;
    wait.attempt = &attempt;
    wait.waited_ms = attempt.input_wait_ms.value_or(0) + attempt.data_wait_ms.value_or(0);
    wait.total_ms = Between(attempt.started_at_ms, attempt.finished_at_ms).value_or(0) +
                    attempt.input_wait_ms.value_or(0);
    if (wait.total_ms > 0 && wait.waited_ms * 20 > wait.total_ms) {
      // The tier it read the most from is where the wait most likely was.
      const AttemptRow::Read* slowest = nullptr;
      for (const AttemptRow::Read& read : attempt.reads) {
        if (slowest == nullptr || read.bytes > slowest->bytes) slowest = &read;
      }
      wait.advice =
          StrCat(Printable(task.id), " waited ", DurationText(wait.waited_ms), " on data, ",
                 wait.waited_ms * 100 / wait.total_ms, "% of its ", DurationText(wait.total_ms));
      if (slowest != nullptr) {
        wait.advice +=
            StrCat(", reading ", Printable(slowest->input), " (", FormatSize(slowest->bytes),
                   ") from tier ", Printable(slowest->tier),
                   ": give it a working copy on a faster tier (a measured profile for ",
                   Printable(slowest->tier),
                   " lets placement see it is slow: tierflow tiers probe), or "
                   "mark the input `stream: true` so the task starts on its first files");
      }
    }
    waits.push_back(std::move(wait));
  }
  return waits;
}

void RenderRunText(const RunDetail& detail, bool all_attempts, std::ostream& out) {
  const RunSummary& run = detail.run;
  std::string state = Printable(run.state);
  if (run.engine == EngineStatus::kGone) {
    state += StrCat(" (its tierflow process", run.engine_pid ? StrCat(" ", *run.engine_pid) : "",
                    " is gone; resume with: tierflow resume ", Printable(run.id), ")");
  } else if (run.engine == EngineStatus::kOtherHost) {
    state += StrCat(" (driven from ", Printable(run.engine_host), ")");
  }
  if (run.cancel_requested && run.state == scheduler::run_state::kRunning) {
    state += ", cancel requested";
  }
  std::string params;
  for (const auto& [name, value] : run.params) {
    params += StrCat(params.empty() ? "" : ", ", Printable(name), "=", Printable(value));
  }
  std::vector<std::pair<std::string_view, std::string>> header = {
      {"run", Printable(run.id)},
      {"pipeline", Printable(run.pipeline)},
      {"file", Printable(run.file)},
      {"state", state},
  };
  if (!run.message.empty()) header.emplace_back("message", Printable(run.message));
  header.emplace_back("params", params.empty() ? "(defaults)" : params);
  header.emplace_back("created", LocalTime(run.created_at_ms));
  header.emplace_back("started", OptionalTime(run.started_at_ms));
  header.emplace_back("finished", OptionalTime(run.finished_at_ms));
  header.emplace_back("duration", DurationText(run.duration_ms));
  header.emplace_back("tasks", CountsText(run.counts));
  for (const auto& [name, value] : header) {
    out << name << std::string(10 - name.size(), ' ') << value << '\n';
  }

  if (!detail.tasks.empty()) {
    out << '\n';
    Table tasks({"TASK", "KIND", "STATE", "ATTEMPTS", "EXIT", "DURATION", "MESSAGE"});
    for (const TaskRow& task : detail.tasks) {
      tasks.Add({Printable(task.id), Printable(task.kind), Printable(task.state),
                 StrCat(task.attempt_count),
                 task.attempts.empty() ? "-" : ExitText(task.attempts.back()),
                 DurationText(Between(task.started_at_ms, task.finished_at_ms)),
                 Printable(task.message)});
      if (task.attempts.size() > 1 || (all_attempts && !task.attempts.empty())) {
        for (const AttemptRow& attempt : task.attempts) {
          tasks.Add({StrCat("  attempt ", attempt.number), "", Printable(attempt.state), "",
                     ExitText(attempt),
                     DurationText(Between(attempt.started_at_ms, attempt.finished_at_ms)),
                     AttemptMessage(attempt)});
        }
      }
    }
    tasks.Write(out);
  }

  Table outputs({"OUTPUT", "SIZE", "HASH", "COPIES"});
  bool any_output = false;
  for (const TaskRow& task : detail.tasks) {
    for (const ArtifactRow& artifact : task.outputs) {
      any_output = true;
      outputs.Add({Printable(StrCat(artifact.task_id, "/", artifact.name)), SizeText(artifact),
                   ShortHash(artifact.content_hash), CopiesText(artifact.copies)});
    }
  }
  if (any_output) {
    out << '\n';
    outputs.Write(out);
  }

  if (!detail.checkpoints.empty()) {
    out << '\n';
    Table checkpoints({"CHECKPOINT", "STEP", "STATE", "SIZE", "FLUSHED TO", "FLUSH", "HASH"});
    for (const scheduler::CheckpointRow& row : detail.checkpoints) {
      checkpoints.Add(
          {Printable(StrCat(row.task_id, "/", row.name)), row.step ? StrCat(*row.step) : "-",
           Printable(row.state),
           row.bytes ? FormatSize(static_cast<uint64_t>(std::max<int64_t>(*row.bytes, 0))) : "-",
           Printable(row.tier), DurationText(row.flush_ms),
           row.content_hash.empty() ? "-" : ShortHash(row.content_hash)});
    }
    checkpoints.Write(out);
  }

  const std::vector<DataWait> waits = DataWaits(detail);
  if (!waits.empty()) {
    out << '\n';
    Table data({"DATA", "WAITED", "OF ITS TIME", "BLOCKED ON I/O", "READ", "WRITTEN", "READ FROM"});
    for (const DataWait& wait : waits) {
      const AttemptRow& attempt = *wait.attempt;
      std::string from;
      for (const AttemptRow::Read& read : attempt.reads) {
        from +=
            StrCat(from.empty() ? "" : ", ", Printable(read.input), " on ", Printable(read.tier));
      }
      auto bytes = [](const std::optional<int64_t>& value) {
        return value ? FormatSize(static_cast<uint64_t>(std::max<int64_t>(*value, 0)))
                     : std::string("-");
      };
      data.Add({Printable(wait.task->id), DurationText(wait.waited_ms),
                wait.total_ms > 0 ? StrCat(wait.waited_ms * 100 / wait.total_ms, "%") : "-",
                DurationText(attempt.io_wait_ms), bytes(attempt.read_bytes),
                bytes(attempt.write_bytes), from.empty() ? "-" : from});
    }
    data.Write(out);
    for (const DataWait& wait : waits) {
      if (!wait.advice.empty()) out << "advisor: " << wait.advice << '\n';
    }
  }

  const auto failed = std::find_if(detail.tasks.begin(), detail.tasks.end(), [](const TaskRow& t) {
    return t.state == scheduler::task_state::kFailed && !t.attempts.empty();
  });
  if (failed != detail.tasks.end()) {
    out << "\nwhy " << Printable(failed->id) << " failed: tierflow logs " << Printable(run.id)
        << " " << Printable(failed->id) << '\n';
  }
}

void RenderRunJson(const RunDetail& detail, std::ostream& out) {
  Json tasks = Json::array();
  for (const TaskRow& task : detail.tasks) tasks.push_back(TaskJson(task));
  Json advice = Json::array();
  for (const DataWait& wait : DataWaits(detail)) {
    if (!wait.advice.empty()) advice.push_back(wait.advice);
  }
  Json checkpoints = Json::array();
  for (const scheduler::CheckpointRow& row : detail.checkpoints) {
    checkpoints.push_back({{"task_id", row.task_id},
                           {"attempt_id", row.attempt_id},
                           {"name", row.name},
                           {"step", Optional(row.step)},
                           {"local_uri", row.local_uri},
                           {"tier", row.tier},
                           {"uri", row.uri},
                           {"bytes", Optional(row.bytes)},
                           {"content_hash", OptionalText(row.content_hash)},
                           {"state", row.state},
                           {"committed_at_ms", row.committed_at_ms},
                           {"flush_ms", Optional(row.flush_ms)},
                           {"message", row.message}});
  }
  Dump(Json{{"run", RunJson(detail.run)},
            {"tasks", tasks},
            {"checkpoints", checkpoints},
            {"advice", advice}},
       out);
}

void RenderTaskJson(const TaskRow& task, std::ostream& out) { Dump(TaskJson(task), out); }

void RenderLineageText(const LineageGraph& graph, std::ostream& out) {
  LineageText(graph, out).Render();
}

void RenderLineageJson(const LineageGraph& graph, std::ostream& out) {
  Json nodes = Json::array();
  for (const auto& [id, artifact] : graph.artifacts) {
    Json node{{"id", LineageNode{LineageNode::Type::kArtifact, id}.Key()}, {"type", "artifact"}};
    node.update(ArtifactJson(artifact, "artifact_id"));
    nodes.push_back(std::move(node));
  }
  for (const auto& [id, attempt] : graph.attempts) {
    nodes.push_back(Json{{"id", LineageNode{LineageNode::Type::kAttempt, id}.Key()},
                         {"type", "attempt"},
                         {"attempt_id", attempt.id},
                         {"run_id", attempt.run_id},
                         {"task_id", attempt.task_id},
                         {"number", attempt.number},
                         {"state", attempt.state},
                         {"cached_from", Optional(attempt.cached_from)},
                         {"started_at_ms", attempt.started_at_ms},
                         {"finished_at_ms", Optional(attempt.finished_at_ms)},
                         {"exit_code", Optional(attempt.exit_code)},
                         {"signal", Optional(attempt.signal)},
                         {"message", attempt.message}});
  }
  Json edges = Json::array();
  for (const LineageEdge& edge : graph.edges) {
    edges.push_back(Json{{"from", edge.from.Key()},
                         {"to", edge.to.Key()},
                         {"kind", std::string(scheduler::LineageEdgeKindName(edge.kind))},
                         {"name", edge.name}});
  }
  Json direction = nullptr;
  if (graph.root) {
    direction = graph.direction == LineageDirection::kUpstream     ? "upstream"
                : graph.direction == LineageDirection::kDownstream ? "downstream"
                                                                   : "both";
  }
  Dump(Json{{"run_id", graph.run_id},
            {"root", graph.root ? Json(LineageNode{LineageNode::Type::kArtifact, *graph.root}.Key())
                                : Json(nullptr)},
            {"direction", direction},
            {"nodes", nodes},
            {"edges", edges}},
       out);
}

void RenderLineageDot(const LineageGraph& graph, std::ostream& out) {
  const std::string title = graph.root
                                ? StrCat("lineage of ", graph.artifacts.at(*graph.root).Ref())
                                : StrCat("lineage of run ", graph.run_id);
  out << "digraph lineage {\n"
      << "  graph [rankdir=LR, labelloc=t, label=\"" << DotEscape(title) << "\"];\n"
      << "  node [fontname=\"Helvetica\", fontsize=10];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  for (const auto& [id, artifact] : graph.artifacts) {
    out << DotNode(graph, {LineageNode::Type::kArtifact, id});
  }
  for (const auto& [id, attempt] : graph.attempts) {
    out << DotNode(graph, {LineageNode::Type::kAttempt, id});
  }
  for (const LineageEdge& edge : graph.edges) {
    out << "  \"" << edge.from.Key() << "\" -> \"" << edge.to.Key() << "\"";
    if (edge.kind == LineageEdge::Kind::kReused) {
      out << " [style=dashed, label=\"reused\"]";
    } else if (edge.kind == LineageEdge::Kind::kConsumed) {
      out << " [label=\"" << DotEscape(edge.name) << "\"]";
    }
    out << ";\n";
  }
  out << "}\n";
}

absl::Status WriteLineage(const std::string& db, const std::string& target, bool upstream,
                          bool downstream, std::optional<int64_t> depth, const std::string& format,
                          std::ostream& out) {
  LineageDirection direction = LineageDirection::kBoth;
  if (upstream != downstream) {
    direction = upstream ? LineageDirection::kUpstream : LineageDirection::kDownstream;
  }
  TF_ASSIGN_OR_RETURN(LineageGraph graph, GetLineage(db, target, direction, depth));
  if (format == "json") {
    RenderLineageJson(graph, out);
  } else if (format == "dot") {
    RenderLineageDot(graph, out);
  } else {
    RenderLineageText(graph, out);
  }
  return absl::OkStatus();
}

}  // namespace tierflow::api
