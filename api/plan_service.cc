#include "api/plan_service.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string_view>
#include <utility>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/units.h"
#include "dag/graph.h"
#include "dag/loader.h"

namespace tierflow::api {
namespace {

// Collects output in memory and hands it to the stream in large chunks:
// a 100k-task plan is tens of MB, and many small writes to std::cout (which
// is synchronised with stdio) would dominate the run time. Appends are
// inline copies into a fixed buffer: a JSON plan makes dozens per task.
class ChunkedWriter {
 public:
  explicit ChunkedWriter(std::ostream& out) : out_(out), buffer_(new char[kChunk]) {}
  ~ChunkedWriter() { Flush(); }
  ChunkedWriter(const ChunkedWriter&) = delete;
  ChunkedWriter& operator=(const ChunkedWriter&) = delete;

  void Append(std::string_view text) {
    if (text.size() > kChunk - used_) return AppendLarge(text);
    std::memcpy(buffer_.get() + used_, text.data(), text.size());
    used_ += text.size();
  }
  void Append(char c) {
    if (used_ == kChunk) Flush();
    buffer_[used_++] = c;
  }
  void Pad(size_t count) {
    while (count > 0) {
      if (used_ == kChunk) Flush();
      const size_t n = std::min(count, kChunk - used_);
      std::memset(buffer_.get() + used_, ' ', n);
      used_ += n;
      count -= n;
    }
  }
  void Flush() {
    out_.write(buffer_.get(), static_cast<std::streamsize>(used_));
    used_ = 0;
  }

  // Room for up to kMaxReserve bytes written straight into the buffer at
  // the returned pointer; Commit(end) then keeps what was written.
  static constexpr size_t kMaxReserve = 1024;
  char* Reserve(size_t count) {
    if (count > kChunk - used_) Flush();
    return buffer_.get() + used_;
  }
  void Commit(const char* end) { used_ = static_cast<size_t>(end - buffer_.get()); }

 private:
  static constexpr size_t kChunk = 1 << 16;
  static_assert(kMaxReserve <= kChunk);

  // Fills the buffer, then writes what does not fit in one go.
  void AppendLarge(std::string_view text) {
    const size_t head = kChunk - used_;
    std::memcpy(buffer_.get() + used_, text.data(), head);
    used_ = kChunk;
    Flush();
    text.remove_prefix(head);
    if (text.size() >= kChunk) {
      out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    } else {
      std::memcpy(buffer_.get(), text.data(), text.size());
      used_ = text.size();
    }
  }

  std::ostream& out_;
  std::unique_ptr<char[]> buffer_;
  size_t used_ = 0;
};

// A failure without diagnostics (unreadable file, graph error) as text that
// names `path`: loader errors already do, others get it in front.
std::string MessageNamingPath(const std::string& path, const absl::Status& status) {
  std::string message(status.message());
  if (message.find(path) == std::string::npos) message = StrCat(path, ": ", message);
  return message;
}

Diagnostic DiagnosticNamingPath(const std::string& path, const absl::Status& status) {
  Diagnostic diagnostic;
  diagnostic.message = MessageNamingPath(path, status);
  return diagnostic;
}

dag::LoadOptions MakeLoadOptions(const ParamOverrides& overrides) {
  dag::LoadOptions options;
  options.param_overrides = overrides;
  return options;
}

// ---------------------------------------------------------------- text

// "random", or "random 64 MiB" when the bytes are known.
std::string AccessCell(dag::AccessPattern pattern, uint64_t bytes) {
  std::string cell(dag::AccessPatternName(pattern));
  if (bytes > 0 && pattern != dag::AccessPattern::kNone) cell += StrCat(" ", FormatSize(bytes));
  return cell;
}

enum Column { kTask, kKind, kRead, kWrite, kBlock, kPasses, kStreams, kDurability, kNeeds };
constexpr std::array<std::string_view, 9> kHeadings = {
    "TASK", "KIND", "READ", "WRITE", "BLOCK", "PASSES", "STREAMS", "DURABILITY", "NEEDS"};
using Row = std::array<std::string, kHeadings.size()>;

// The cells of one task; NEEDS only when `with_needs` (it is the last,
// unpadded column, so widths never need it).
Row TaskRow(const scheduler::PlannedTask& task, bool with_needs) {
  uint64_t write_bytes = task.io.write_bytes;
  // Without a profile figure, what the task writes is what its outputs hold.
  if (write_bytes == 0) {
    for (const scheduler::PlannedOutput& output : task.outputs) write_bytes += output.size_hint;
  }
  Row row;
  row[kTask] = task.id;
  row[kKind] = dag::StageKindName(task.kind);
  row[kRead] = AccessCell(task.io.read, task.io.read_bytes);
  row[kWrite] = AccessCell(task.io.write, write_bytes);
  row[kBlock] = task.io.block_size > 0 ? FormatSize(task.io.block_size) : "-";
  row[kPasses] = StrCat(task.io.read_passes);
  row[kStreams] = StrCat(task.io.streams);
  row[kDurability] = DurabilityName(task.io.durability);
  if (with_needs) {
    row[kNeeds] = task.dependencies.empty() ? "-" : absl::StrJoin(task.dependencies, ",");
    // Item-wise: each task reads only its own item of the stages mapped over.
    if (!task.foreach_over.empty()) row[kNeeds] += StrCat(" (mapped over ", task.foreach_over, ")");
  }
  return row;
}

void WriteRow(const Row& row, const std::array<size_t, kHeadings.size()>& widths,
              ChunkedWriter& writer) {
  writer.Append("  ");
  for (size_t c = 0; c < row.size(); ++c) {
    writer.Append(row[c]);
    if (c + 1 < row.size()) writer.Pad(widths[c] - row[c].size() + 2);
  }
  writer.Append('\n');
}

void RenderLayerText(const scheduler::PlanLayer& layer, ChunkedWriter& writer) {
  writer.Append(StrCat("layer ", layer.index, " (", layer.stages.size(),
                       layer.stages.size() == 1 ? " stage, " : " stages, ", layer.tasks.size(),
                       layer.tasks.size() == 1 ? " task)\n" : " tasks)\n"));
  std::array<size_t, kHeadings.size()> widths{};
  for (size_t c = 0; c < kHeadings.size(); ++c) widths[c] = kHeadings[c].size();
  // Tasks of one stage differ only in their id, so a stage's cells are
  // measured once: 100k foreach items cost 100k id lengths, not 100k rows.
  const std::string* last_stage = nullptr;
  for (const scheduler::PlannedTask& task : layer.tasks) {
    widths[kTask] = std::max(widths[kTask], task.id.size());
    if (last_stage != nullptr && *last_stage == task.stage) continue;
    last_stage = &task.stage;
    Row row = TaskRow(task, /*with_needs=*/false);
    for (size_t c = 0; c < kNeeds; ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  Row heading;
  for (size_t c = 0; c < kHeadings.size(); ++c) heading[c] = kHeadings[c];
  WriteRow(heading, widths, writer);
  last_stage = nullptr;
  Row row;
  for (const scheduler::PlannedTask& task : layer.tasks) {
    if (last_stage == nullptr || *last_stage != task.stage) {
      row = TaskRow(task, /*with_needs=*/true);
      last_stage = &task.stage;
    }
    row[kTask] = task.id;
    WriteRow(row, widths, writer);
  }
}

// The stages of a layer whose tasks are added at run time, one line each.
void RenderDynamicText(const scheduler::PlanLayer& layer, ChunkedWriter& writer) {
  for (const scheduler::PlannedDynamicStage& dynamic : layer.dynamic) {
    writer.Append(StrCat(
        "  ", dynamic.stage, "  expanded at run time, ",
        dynamic.from.empty() ? StrCat("with the items of ", dynamic.over)
                             : StrCat("from ", dynamic.from),
        dynamic.from.empty() || dynamic.format == "lines" ? "" : StrCat(" (", dynamic.format, ")"),
        "\n"));
  }
}

std::string ParamsLine(const std::vector<scheduler::PlannedParam>& params) {
  std::string line = "params:";
  for (size_t i = 0; i < params.size(); ++i) {
    line += StrCat(i == 0 ? " " : ", ", params[i].name, "=", params[i].value);
    if (params[i].overridden) line += " (overridden)";
  }
  return line;
}

std::string_view ParamScopeName(dag::ParamScope scope) {
  switch (scope) {
    case dag::ParamScope::kReferenced:
      return "referenced";
    case dag::ParamScope::kDeclared:
      return "declared";
    case dag::ParamScope::kAll:
      return "all";
  }
  return "referenced";
}

// One line per stage: the params it sees and is keyed by, and how they
// were chosen ("train  epochs, lr  (declared)"). Stages in plan order.
void RenderStageParamsText(const Plan& plan, ChunkedWriter& writer) {
  std::vector<const scheduler::PlannedTask*> stages;
  size_t width = 0;
  for (const scheduler::PlanLayer& layer : plan.layers) {
    const std::string* last_stage = nullptr;
    for (const scheduler::PlannedTask& task : layer.tasks) {
      if (last_stage != nullptr && *last_stage == task.stage) continue;
      last_stage = &task.stage;
      stages.push_back(&task);
      width = std::max(width, task.stage.size());
    }
  }
  writer.Append("stage params:\n");
  for (const scheduler::PlannedTask* task : stages) {
    writer.Append("  ");
    writer.Append(task->stage);
    writer.Pad(width - task->stage.size() + 2);
    writer.Append(task->params.empty() ? std::string("-") : absl::StrJoin(task->params, ", "));
    writer.Append(StrCat("  (", ParamScopeName(task->param_scope), ")\n"));
  }
}

// ---------------------------------------------------------------- JSON

// Writes JSON tokens; the caller supplies structure (keys, commas).
class JsonWriter {
 public:
  explicit JsonWriter(ChunkedWriter& out) : out_(out) {}

  void Raw(std::string_view text) { out_.Append(text); }
  // A literal: its length is known, so the copy compiles to a few moves.
  template <size_t N>
  void Raw(const char (&text)[N]) {
    static_assert(N - 1 <= ChunkedWriter::kMaxReserve);
    char* at = out_.Reserve(N - 1);
    std::memcpy(at, text, N - 1);
    out_.Commit(at + N - 1);
  }
  void String(std::string_view value) {
    // Copy and check in one pass; only text that needs escaping is redone.
    if (value.size() + 2 <= ChunkedWriter::kMaxReserve) {
      char* at = out_.Reserve(value.size() + 2);
      char* end = at;
      *end++ = '"';
      bool plain = true;
      for (char c : value) {
        plain &= IsPlain(c);
        *end++ = c;
      }
      *end++ = '"';
      if (plain) return out_.Commit(end);
    } else if (std::all_of(value.begin(), value.end(), IsPlain)) {
      out_.Append('"');
      out_.Append(value);
      out_.Append('"');
      return;
    }
    // nlohmann escapes control characters and replaces invalid UTF-8 with
    // U+FFFD, so whatever bytes a YAML file holds, the output stays JSON.
    out_.Append(nlohmann::json(std::string(value))
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  void Bool(bool value) { out_.Append(value ? "true" : "false"); }
  void Null() { out_.Append("null"); }
  template <typename Integer>
  void Int(Integer value) {
    constexpr size_t kDigits = 24;  // any 64-bit integer with its sign
    char* at = out_.Reserve(kDigits);
    out_.Commit(std::to_chars(at, at + kDigits, value).ptr);
  }
  void Double(double value) {
    if (!std::isfinite(value)) return Null();
    constexpr size_t kChars = 32;  // the shortest round-trip form of any double
    char* at = out_.Reserve(kChars);
    out_.Commit(std::to_chars(at, at + kChars, value).ptr);
  }
  void StringArray(const std::vector<std::string>& values) {
    out_.Append('[');
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out_.Append(',');
      String(values[i]);
    }
    out_.Append(']');
  }

 private:
  // Printable ASCII without quote or backslash needs no escaping.
  static bool IsPlain(char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }
  ChunkedWriter& out_;
};

void WriteParamValue(const scheduler::PlannedParam& param, JsonWriter& json) {
  const std::string& text = param.value;
  const char* end = text.data() + text.size();
  switch (param.type) {
    case dag::ParamType::kList:
      return json.StringArray(param.items);
    case dag::ParamType::kBool:
      if (text == "true" || text == "false") return json.Bool(text == "true");
      break;
    case dag::ParamType::kInt: {
      int64_t value = 0;
      auto [ptr, ec] = std::from_chars(text.data(), end, value);
      if (ec == std::errc() && ptr == end) return json.Int(value);
      break;
    }
    case dag::ParamType::kFloat: {
      double value = 0;
      auto [ptr, ec] = std::from_chars(text.data(), end, value);
      if (ec == std::errc() && ptr == end && std::isfinite(value)) return json.Double(value);
      break;
    }
    case dag::ParamType::kString:
      break;
  }
  // Text the type does not parse as (the loader normalises, so only a
  // string) stays text rather than becoming invalid JSON.
  json.String(text);
}

// `value`, or null when it is empty.
void StringOrNull(const std::string& value, JsonWriter& json) {
  if (value.empty()) {
    json.Null();
  } else {
    json.String(value);
  }
}

// ,"dynamic":[...]: a layer's stages whose tasks are added at run time
// ("tasks": null: not known before the run).
void WriteDynamicJson(const scheduler::PlanLayer& layer, JsonWriter& json) {
  json.Raw(",\"dynamic\":[");
  for (size_t i = 0; i < layer.dynamic.size(); ++i) {
    const scheduler::PlannedDynamicStage& dynamic = layer.dynamic[i];
    json.Raw(i > 0 ? ",{\"stage\":" : "{\"stage\":");
    json.String(dynamic.stage);
    json.Raw(",\"expanded\":\"at run time\",\"from\":");
    StringOrNull(dynamic.from, json);
    json.Raw(",\"format\":");
    StringOrNull(dynamic.from.empty() ? std::string() : dynamic.format, json);
    json.Raw(",\"over\":");
    StringOrNull(dynamic.over, json);
    json.Raw(",\"tasks\":null}");
  }
  json.Raw("]");
}

void WriteTaskJson(const scheduler::PlannedTask& task, JsonWriter& json) {
  json.Raw("{\"id\":");
  json.String(task.id);
  json.Raw(",\"stage\":");
  json.String(task.stage);
  json.Raw(",\"kind\":");
  json.String(dag::StageKindName(task.kind));
  json.Raw(",\"layer\":");
  json.Int(task.layer);
  json.Raw(",\"item\":");
  task.item ? json.String(*task.item) : json.Null();
  json.Raw(",\"item_index\":");
  json.Int(task.item_index);
  json.Raw(",\"foreach_over\":");
  StringOrNull(task.foreach_over, json);

  const dag::IoProfile& io = task.io;
  json.Raw(",\"io\":{\"read\":");
  json.String(dag::AccessPatternName(io.read));
  json.Raw(",\"write\":");
  json.String(dag::AccessPatternName(io.write));
  json.Raw(",\"block_size_bytes\":");
  json.Int(io.block_size);
  json.Raw(",\"read_bytes\":");
  json.Int(io.read_bytes);
  json.Raw(",\"write_bytes\":");
  json.Int(io.write_bytes);
  json.Raw(",\"read_passes\":");
  json.Int(io.read_passes);
  json.Raw(",\"streams\":");
  json.Int(io.streams);
  json.Raw(",\"durability\":");
  json.String(DurabilityName(io.durability));

  json.Raw("},\"resources\":{\"cpus\":");
  json.Double(task.resources.cpus);
  json.Raw(",\"memory_bytes\":");
  json.Int(task.resources.memory);
  json.Raw(",\"gpus\":");
  json.Int(task.resources.gpus);

  json.Raw("},\"retries\":{\"limit\":");
  json.Int(task.retries.limit);
  json.Raw(",\"backoff_ms\":");
  json.Int(task.retries.backoff.count());
  json.Raw(",\"factor\":");
  json.Double(task.retries.factor);
  json.Raw(",\"max_backoff_ms\":");
  json.Int(task.retries.max_backoff.count());

  json.Raw("},\"timeout_ms\":");
  task.timeout ? json.Int(task.timeout->count()) : json.Null();
  json.Raw(",\"cache\":");
  json.Bool(task.cache);
  json.Raw(",\"tier\":");
  json.String(task.tier);
  json.Raw(",\"checkpoints\":{\"enabled\":");
  json.Bool(task.checkpoints.enabled);
  json.Raw(",\"keep\":");
  json.Int(task.checkpoints.keep);
  json.Raw(",\"tier\":");
  json.String(task.checkpoints.tier);
  json.Raw("},\"dependencies\":");
  json.StringArray(task.dependencies);
  json.Raw(",\"param_scope\":");
  json.String(ParamScopeName(task.param_scope));
  json.Raw(",\"params\":");
  json.StringArray(task.params);
  json.Raw(",\"argv\":");
  json.StringArray(task.argv);
  json.Raw(",\"shell\":");
  json.String(task.shell);
  if (!task.shell.empty()) {
    json.Raw(task.shell_direct ? ",\"shell_exec\":\"direct\"" : ",\"shell_exec\":\"sh\"");
    json.Raw(",\"why_shell\":");
    json.String(task.why_shell);
  }
  json.Raw(",\"outputs\":[");
  for (size_t i = 0; i < task.outputs.size(); ++i) {
    const scheduler::PlannedOutput& output = task.outputs[i];
    json.Raw(i > 0 ? ",{\"name\":" : "{\"name\":");
    json.String(output.name);
    json.Raw(",\"size_bytes\":");
    json.Int(output.size_hint);
    json.Raw(",\"durability\":");
    json.String(DurabilityName(output.durability));
    json.Raw("}");
  }
  json.Raw("]}");
}

}  // namespace

std::vector<FileValidation> ValidateFiles(const std::vector<std::string>& files,
                                          const ParamOverrides& overrides) {
  const dag::LoadOptions options = MakeLoadOptions(overrides);
  std::vector<FileValidation> results;
  results.reserve(files.size());
  for (const std::string& file : files) {
    FileValidation& result = results.emplace_back();
    result.file = file;
    absl::StatusOr<dag::Pipeline> pipeline =
        dag::LoadPipelineFile(file, options, &result.diagnostics);
    if (pipeline.ok()) {
      // A loaded pipeline is valid, cycles included, so counting its tasks
      // needs no graph (building one adds about a third to the time at 100k stages).
      result.ok = true;
      result.stage_count = static_cast<uint32_t>(pipeline->stages.size());
      for (const dag::Stage& stage : pipeline->stages) result.task_count += stage.TaskCount();
      continue;
    }
    if (result.diagnostics.empty()) {
      result.diagnostics.push_back(DiagnosticNamingPath(file, pipeline.status()));
    }
    SortDiagnostics(result.diagnostics);
  }
  return results;
}

absl::StatusOr<Plan> PlanPipelineFile(const std::string& path, const ParamOverrides& overrides) {
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<dag::Pipeline> pipeline =
      dag::LoadPipelineFile(path, MakeLoadOptions(overrides), &diagnostics);
  if (!pipeline.ok()) {
    if (diagnostics.empty()) {
      return absl::Status(pipeline.status().code(), MessageNamingPath(path, pipeline.status()));
    }
    SortDiagnostics(diagnostics);
    return DiagnosticsToStatus(diagnostics);
  }
  // The graph points into `pipeline`; the Plan copies what it needs out.
  absl::StatusOr<dag::TaskGraph> graph = dag::TaskGraph::Build(*pipeline);
  if (!graph.ok()) {
    return absl::Status(graph.status().code(), MessageNamingPath(path, graph.status()));
  }
  return scheduler::BuildPlan(*graph);
}

void RenderPlanText(const Plan& plan, std::ostream& out) {
  ChunkedWriter writer(out);
  writer.Append(StrCat("pipeline ", plan.pipeline, ": ", plan.stage_count,
                       plan.stage_count == 1 ? " stage, " : " stages, ", plan.task_count,
                       plan.task_count == 1 ? " task, " : " tasks, ", plan.layers.size(),
                       plan.layers.size() == 1 ? " layer\n" : " layers\n"));
  if (!plan.params.empty()) writer.Append(StrCat(ParamsLine(plan.params), "\n"));
  writer.Append(StrCat("critical path: ", absl::StrJoin(plan.critical_path, " -> "), " (",
                       plan.critical_path.size(),
                       plan.critical_path.size() == 1 ? " stage)\n" : " stages)\n"));
  if (!plan.params.empty()) RenderStageParamsText(plan, writer);
  for (const scheduler::PlanLayer& layer : plan.layers) {
    writer.Append('\n');
    RenderLayerText(layer, writer);
    RenderDynamicText(layer, writer);
  }
}

void RenderPlanJson(const Plan& plan, std::ostream& out, std::string_view extra_fields) {
  ChunkedWriter writer(out);
  JsonWriter json(writer);
  json.Raw("{\"pipeline\":");
  json.String(plan.pipeline);
  json.Raw(",\"file\":");
  json.String(plan.file);
  json.Raw(",\"description\":");
  json.String(plan.description);
  json.Raw(",\"params\":[");
  for (size_t i = 0; i < plan.params.size(); ++i) {
    const scheduler::PlannedParam& param = plan.params[i];
    json.Raw(i > 0 ? ",{\"name\":" : "{\"name\":");
    json.String(param.name);
    json.Raw(",\"type\":");
    json.String(dag::ParamTypeName(param.type));
    json.Raw(",\"value\":");
    WriteParamValue(param, json);
    json.Raw(",\"overridden\":");
    json.Bool(param.overridden);
    json.Raw("}");
  }
  json.Raw("],\"totals\":{\"stages\":");
  json.Int(plan.stage_count);
  json.Raw(",\"tasks\":");
  json.Int(plan.task_count);
  json.Raw(",\"layers\":");
  json.Int(plan.layers.size());
  json.Raw("},\"critical_path\":");
  json.StringArray(plan.critical_path);
  json.Raw(",\"layers\":[");
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const scheduler::PlanLayer& layer = plan.layers[l];
    json.Raw(l > 0 ? ",{\"layer\":" : "{\"layer\":");
    json.Int(layer.index);
    json.Raw(",\"stages\":");
    json.StringArray(layer.stages);
    json.Raw(",\"tasks\":[");
    for (size_t t = 0; t < layer.tasks.size(); ++t) {
      if (t > 0) json.Raw(",\n");
      WriteTaskJson(layer.tasks[t], json);
    }
    json.Raw("]");
    WriteDynamicJson(layer, json);
    json.Raw("}");
  }
  json.Raw("]");
  json.Raw(extra_fields);
  json.Raw("}\n");
}

}  // namespace tierflow::api
