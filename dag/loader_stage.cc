// The pipeline loader's stage reader: `defaults:` and each stage of
// `stages:` with its command, needs, inputs, outputs, I/O profile,
// resources, retries, timeout, cache, tier, checkpoints, environment and
// `slurm:` options.
// References between stages are only recorded here (StageSource) and
// checked once every stage is read (loader_references.cc). Part of the
// Loader (dag/internal/loader_internal.h).
#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "common/yaml_fields.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

// Far beyond any real pipeline (tasks fan out with foreach), and a bound on
// the model's memory, about 1 KiB a stage.
constexpr size_t kMaxStages = 1'000'000;

const std::vector<std::string>& DurabilityNames() {
  static const auto* const names =
      new std::vector<std::string>{"volatile", "node", "durable", "archive"};
  return *names;
}

const std::vector<std::string>& AccessPatternNames() {
  static const auto* const names = new std::vector<std::string>{"none", "sequential", "random"};
  return *names;
}

const KeyList& DefaultsKeys() {
  static const auto* const keys = new KeyList{"resources", "retries", "timeout", "cache"};
  return *keys;
}
const KeyList& StageKeys() {
  static const auto* const keys =
      new KeyList{"kind", "description", "run",     "needs",   "inputs",  "outputs",
                  "io",   "resources",   "retries", "timeout", "foreach", "cache",
                  "tier", "checkpoints", "env",     "slurm",   "params"};
  return *keys;
}
const KeyList& InputKeys() {
  static const auto* const keys = new KeyList{"from", "stream", "each"};
  return *keys;
}
const KeyList& OutputKeys() {
  static const auto* const keys = new KeyList{"size", "durability"};
  return *keys;
}
const KeyList& IoKeys() {
  static const auto* const keys =
      new KeyList{"read",        "write",       "block_size", "read_bytes",
                  "write_bytes", "read_passes", "streams",    "durability"};
  return *keys;
}
const KeyList& ResourceKeys() {
  static const auto* const keys = new KeyList{"cpus", "memory", "gpus", "labels"};
  return *keys;
}
const KeyList& SlurmKeys() {
  static const auto* const keys = new KeyList{"items_per_job", "options"};
  return *keys;
}
const KeyList& RetryKeys() {
  static const auto* const keys = new KeyList{"limit", "backoff", "factor", "max_backoff"};
  return *keys;
}
const KeyList& CheckpointKeys() {
  static const auto* const keys = new KeyList{"keep", "tier"};
  return *keys;
}

}  // namespace

void Loader::ReadDefaults(const YamlNode& node, const FieldPath& path) {
  if (node.IsNull()) return;
  Fields fields(DefaultsKeys());
  if (!ReadFields(node, path, &fields)) return;
  if (YamlNode value = fields.value("resources"); value.IsDefined()) {
    defaults_.resources = ReadResources(value, path.Key("resources"));
  }
  if (YamlNode value = fields.value("retries"); value.IsDefined()) {
    defaults_.retries = ReadRetries(value, path.Key("retries"));
  }
  if (YamlNode value = fields.value("timeout"); value.IsDefined()) {
    defaults_.timeout = ReadTimeout(value, path.Key("timeout"));
  }
  if (YamlNode value = fields.value("cache"); value.IsDefined()) {
    defaults_.cache = ReadBool(value, path.Key("cache"));
  }
}

void Loader::ReadStages(const YamlNode& node, const FieldPath& path) {
  if (node.IsNull() || (node.IsMap() && node.size() == 0)) {
    Error(node, path, "at least one stage is required");
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "a map");
    return;
  }
  const size_t count = Count(node);
  const size_t expected = std::min(count, kMaxStages);
  pipeline_.stages.reserve(expected);
  sources_.reserve(expected);
  stage_index_.reserve(expected);
  // Like ForEachEntry, but with the stage index as the record of names seen:
  // one hash map fewer on a pipeline of 100k stages.
  for (size_t i = 0; i < count; ++i) {
    const YamlNode::Entry entry = node.entry(i);
    const std::optional<std::string_view> key = ReadKey(entry.key, path);
    if (!key) continue;
    const std::string_view name = *key;
    const FieldPath stage_path = path.Key(name);
    // The lookup for a repeat also records the name, as the stage about to
    // be added (ReadStage does not use the index): one hash per stage.
    const bool room = pipeline_.stages.size() < kMaxStages;
    const auto [first, fresh] =
        room ? stage_index_.try_emplace(name, static_cast<uint32_t>(pipeline_.stages.size()))
             : std::pair(stage_index_.find(name), false);
    const bool repeated = room ? !fresh : first != stage_index_.end();
    if (repeated) {
      Error(entry.key, stage_path,
            StrCat("duplicate stage ", Quote(name), " (first defined at line ",
                   pipeline_.stages[first->second].location.line, ")"));
    }
    CheckName(name, entry.key, stage_path, "stage", IsStageName(name),
              "use letters, digits, '_' and '-', starting with a letter", /*limit_length=*/true);
    // A stage that is kept is read in place: a Stage is about 500 bytes, and
    // moving 100k of them shows in the profile. A repeated stage is still
    // read, so that its own mistakes are reported, and then dropped.
    const bool keep = !repeated && room;
    std::optional<Stage> dropped_stage;
    std::optional<StageSource> dropped_source;
    Stage& stage = keep ? pipeline_.stages.emplace_back() : dropped_stage.emplace();
    StageSource& source = keep ? sources_.emplace_back() : dropped_source.emplace();
    stage.name = std::string(name);
    stage.location = {entry.key.line(), entry.key.column()};
    source.name = name;
    ReadStage(entry.value, stage_path, &stage, &source);
    if (repeated) continue;
    if (!keep) {
      if (!stage_limit_reported_) {
        Error(entry.key, stage_path,
              StrCat("more than ", kMaxStages, " stages: fan out with foreach"));
      }
      stage_limit_reported_ = true;
    }
  }
}

void Loader::ReadStage(const YamlNode& node, const FieldPath& path, Stage* stage,
                       StageSource* source) {
  Fields fields(StageKeys());
  if (!ReadFields(node, path, &fields)) {
    source->outputs_known = false;
    return;
  }
  if (YamlNode kind = fields.value("kind"); kind.IsDefined()) {
    if (auto parsed = ReadEnum<StageKind>(kind, path.Key("kind"), "kind", StageKindNames(),
                                          &ParseStageKind)) {
      stage->kind = *parsed;
    }
  }
  stage->io = DefaultIoProfile(stage->kind);
  if (YamlNode description = fields.value("description"); description.IsDefined()) {
    if (auto text = ReadString(description, path.Key("description"))) {
      stage->description = std::move(*text);
    }
  }
  // foreach before run: `{{ item }}` in run needs a foreach.
  const YamlNode foreach = fields.value("foreach");
  source->foreach = foreach;
  if (IsDynamicForeach(foreach)) {
    ReadForeachFrom(foreach, path.Key("foreach"), stage, source);
  } else if (foreach.IsMap() && foreach.Find("over").IsDefined()) {
    ReadForeachOver(foreach, path.Key("foreach"), source);
  } else if (foreach.IsDefined()) {
    stage->foreach = ReadForeach(foreach, path.Key("foreach"));
  }
  if (YamlNode run = fields.value("run"); run.IsDefined()) {
    // An `each: true` input maps the stage too (loader_mapping.cc).
    const bool has_items = foreach.IsDefined() || HasEachInput(fields.value("inputs"));
    ReadCommand(run, path.Key("run"), has_items, &stage->run);
  } else if (fields.IsMissing("run")) {
    Error(node, path, "missing required key 'run'");
  }
  if (YamlNode needs = fields.value("needs"); needs.IsDefined()) {
    ReadNeeds(needs, path.Key("needs"), stage, source);
  }
  if (YamlNode inputs = fields.value("inputs"); inputs.IsDefined()) {
    ReadInputs(inputs, path.Key("inputs"), stage, source);
  }
  if (YamlNode outputs = fields.value("outputs"); outputs.IsDefined()) {
    ReadOutputs(outputs, path.Key("outputs"), stage, source);
  }
  if (YamlNode io = fields.value("io"); io.IsDefined()) ReadIo(io, path.Key("io"), &stage->io);
  ReadRunPolicy(fields, path, stage);
  // After run and env: what they reference is part of the stage's params.
  ReadStageParams(fields.value("params"), path.Key("params"), stage);
}

void Loader::ReadRunPolicy(const Fields& fields, const FieldPath& path, Stage* stage) {
  // Defaults apply as whole values, never merged field by field.
  if (YamlNode value = fields.value("resources"); value.IsDefined()) {
    if (auto resources = ReadResources(value, path.Key("resources"))) {
      stage->resources = *resources;
    }
  } else if (defaults_.resources) {
    stage->resources = *defaults_.resources;
  }
  if (YamlNode value = fields.value("retries"); value.IsDefined()) {
    if (auto retries = ReadRetries(value, path.Key("retries"))) stage->retries = *retries;
  } else if (defaults_.retries) {
    stage->retries = *defaults_.retries;
  }
  if (YamlNode value = fields.value("timeout"); value.IsDefined()) {
    stage->timeout = ReadTimeout(value, path.Key("timeout"));
  } else {
    stage->timeout = defaults_.timeout;
  }
  // Ingested data cannot be fetched again, so an ingest stage does not reuse
  // an earlier attempt unless asked to.
  stage->cache = defaults_.cache.value_or(stage->kind != StageKind::kIngest);
  if (YamlNode value = fields.value("cache"); value.IsDefined()) {
    if (auto cache = ReadBool(value, path.Key("cache"))) stage->cache = *cache;
  }
  if (YamlNode value = fields.value("tier"); value.IsDefined()) {
    if (auto tier = ReadTierName(value, path.Key("tier"))) stage->tier = std::move(*tier);
  }
  if (YamlNode value = fields.value("checkpoints"); value.IsDefined()) {
    ReadCheckpoints(value, path.Key("checkpoints"), &stage->checkpoints);
  }
  if (YamlNode value = fields.value("env"); value.IsDefined()) {
    ReadEnv(value, path.Key("env"), &stage->env);
  }
  if (YamlNode value = fields.value("slurm"); value.IsDefined()) {
    ReadSlurm(value, path.Key("slurm"), &stage->slurm);
  }
}

void Loader::ReadCommand(const YamlNode& node, const FieldPath& path, bool has_foreach,
                         Command* command) {
  if (node.IsScalar()) {
    const std::string_view script = node.Scalar();
    if (TrimWhitespace(script).empty()) {
      Error(node, path, "empty command");
      return;
    }
    CheckShellTemplates(script, node, path);
    command->shell = script;
    return;
  }
  if (!node.IsSequence()) {
    WrongType(node, path, "a list of strings (argv) or a string (shell script)");
    return;
  }
  const size_t count = Count(node);
  if (count == 0) {
    Error(node, path, "empty command: give at least the program to run");
    return;
  }
  command->argv.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const YamlNode arg = node.at(i);
    const FieldPath arg_path = path.Index(i);
    auto text = ReadScalar(arg, arg_path);
    if (!text) continue;
    if (i == 0 && text->empty()) Error(arg, arg_path, "empty program name");
    CheckArgvTemplates(*text, arg, arg_path, has_foreach);
    command->argv.emplace_back(*text);
  }
}

void Loader::ReadNeeds(const YamlNode& node, const FieldPath& path, Stage* stage,
                       StageSource* source) {
  if (!node.IsSequence()) {
    WrongType(node, path, "a list of stage names");
    return;
  }
  const size_t count = Count(node);
  stage->needs.reserve(count);
  source->needs.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const YamlNode item = node.at(i);
    if (auto name = ReadScalar(item, path.Index(i), "a stage name")) {
      stage->needs.emplace_back(*name);
      source->needs.push_back({*name, item});
    }
  }
}

void Loader::ReadInputs(const YamlNode& node, const FieldPath& path, Stage* stage,
                        StageSource* source) {
  if (node.IsNull()) return;
  CaseInsensitiveNames upper_names;
  ForEachEntry(
      node, path, "input",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath input_path = path.Key(name);
        if (CheckName(name, key, input_path, "input", IsIdentifier(name), kIdentifierRule) &&
            !repeated) {
          CheckCaseCollision(&upper_names, name, key, input_path, "input", "TIERFLOW_INPUT_");
        }
        InputRef input;
        input.name = std::string(name);
        YamlNode reference = value;
        FieldPath reference_path = input_path;
        YamlNode each;
        const bool from_map = value.IsMap();
        if (from_map) {
          Fields fields(InputKeys());
          ReadFields(value, input_path, &fields);
          if (YamlNode stream = fields.value("stream"); stream.IsDefined()) {
            input.stream = ReadBool(stream, input_path.Key("stream")).value_or(false);
          }
          each = fields.value("each");
          if (each.IsDefined()) {
            input.each = ReadBool(each, input_path.Key("each")).value_or(false);
          }
          reference = fields.value("from");
          if (!reference.IsDefined()) {
            if (fields.IsMissing("from")) Error(value, input_path, "missing required key 'from'");
            return;
          }
          reference_path = input_path.Key("from");
        }
        if (!reference.IsScalar()) {
          WrongType(reference, reference_path,
                    from_map ? "'stage.output'"
                             : "'stage.output' or {from: stage.output, stream: bool, each: bool}");
          return;
        }
        const std::string_view text = reference.Scalar();
        const size_t dot = text.find('.');
        if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size() ||
            text.find('.', dot + 1) != std::string_view::npos) {
          Error(reference, reference_path,
                StrCat("invalid reference ", Quote(text), ": expected the form stage.output"));
          reference_errors_ = true;
          return;
        }
        if (repeated) return;
        input.stage = std::string(text.substr(0, dot));
        input.output = std::string(text.substr(dot + 1));
        input.location = {reference.line(), reference.column()};
        stage->inputs.push_back(std::move(input));
        source->input_refs.push_back(reference);
        source->input_from_map.push_back(from_map);
        source->input_each.push_back(each);
      });
}

void Loader::ReadOutputs(const YamlNode& node, const FieldPath& path, Stage* stage,
                         StageSource* source) {
  if (node.IsNull()) return;
  CaseInsensitiveNames upper_names;
  // Declares one output; nullptr for a repeat. An output with a bad name is
  // still declared, so references to it are not reported as well.
  auto declare = [&](std::string_view name, const YamlNode& at, const FieldPath& output_path,
                     bool repeated) -> OutputSpec* {
    if (CheckName(name, at, output_path, "output", IsIdentifier(name), kIdentifierRule) &&
        !repeated) {
      CheckCaseCollision(&upper_names, name, at, output_path, "output", "TIERFLOW_OUTPUT_");
    }
    if (repeated) return nullptr;
    OutputSpec& output = stage->outputs.emplace_back();
    output.name = std::string(name);
    output.location = {at.line(), at.column()};
    return &output;
  };
  if (node.IsSequence()) {
    const size_t count = Count(node);
    stage->outputs.reserve(count);
    SeenNames<int> first_line;
    for (size_t i = 0; i < count; ++i) {
      const YamlNode item = node.at(i);
      const FieldPath item_path = path.Index(i);
      auto name = ReadScalar(item, item_path, "an output name");
      if (!name) continue;
      auto [line, fresh] = first_line.Insert(*name, item.line());
      if (!fresh) {
        Error(item, item_path,
              StrCat("duplicate output ", Quote(*name), " (first defined at line ", line, ")"));
      }
      declare(*name, item, item_path, !fresh);
    }
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "a list of names or a map of name to {size, durability}");
    source->outputs_known = false;
    return;
  }
  ForEachEntry(
      node, path, "output",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath output_path = path.Key(name);
        OutputSpec* output = declare(name, key, output_path, repeated);
        OutputSpec ignored;
        ReadOutputSpec(value, output_path, output != nullptr ? output : &ignored);
      });
}

void Loader::ReadOutputSpec(const YamlNode& node, const FieldPath& path, OutputSpec* output) {
  if (node.IsNull()) return;
  if (node.IsScalar()) {
    if (auto size = ReadSize(node, path)) output->size_hint = *size;
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "a size, null or {size, durability}");
    return;
  }
  Fields fields(OutputKeys());
  ReadFields(node, path, &fields);
  if (YamlNode size = fields.value("size"); size.IsDefined()) {
    output->size_hint = ReadSize(size, path.Key("size")).value_or(0);
  }
  if (YamlNode durability = fields.value("durability"); durability.IsDefined()) {
    output->durability = ReadEnum<Durability>(durability, path.Key("durability"), "durability",
                                              DurabilityNames(), &ParseDurability);
  }
}

void Loader::ReadIo(const YamlNode& node, const FieldPath& path, IoProfile* io) {
  Fields fields(IoKeys());
  if (!ReadFields(node, path, &fields)) return;
  auto pattern = [&](std::string_view key, AccessPattern* out) {
    if (YamlNode value = fields.value(key); value.IsDefined()) {
      if (auto parsed = ReadEnum<AccessPattern>(value, path.Key(key), "access pattern",
                                                AccessPatternNames(), &ParseAccessPattern)) {
        *out = *parsed;
      }
    }
  };
  auto size = [&](std::string_view key, uint64_t* out) {
    if (YamlNode value = fields.value(key); value.IsDefined()) {
      if (auto parsed = ReadSize(value, path.Key(key))) *out = *parsed;
    }
  };
  auto count = [&](std::string_view key, uint32_t* out) {
    if (YamlNode value = fields.value(key); value.IsDefined()) {
      if (auto parsed = ReadInt(value, path.Key(key), 1, std::numeric_limits<uint32_t>::max())) {
        *out = static_cast<uint32_t>(*parsed);
      }
    }
  };
  pattern("read", &io->read);
  pattern("write", &io->write);
  size("block_size", &io->block_size);
  size("read_bytes", &io->read_bytes);
  size("write_bytes", &io->write_bytes);
  count("read_passes", &io->read_passes);
  count("streams", &io->streams);
  if (YamlNode value = fields.value("durability"); value.IsDefined()) {
    if (auto parsed = ReadEnum<Durability>(value, path.Key("durability"), "durability",
                                           DurabilityNames(), &ParseDurability)) {
      io->durability = *parsed;
    }
  }
}

std::optional<Resources> Loader::ReadResources(const YamlNode& node, const FieldPath& path) {
  Fields fields(ResourceKeys());
  if (!ReadFields(node, path, &fields)) return std::nullopt;
  Resources resources;
  bool ok = true;
  if (YamlNode value = fields.value("cpus"); value.IsDefined()) {
    auto cpus = ReadNumber(value, path.Key("cpus"), 0, /*min_inclusive=*/false);
    if (cpus) resources.cpus = *cpus;
    ok = ok && cpus.has_value();
  }
  if (YamlNode value = fields.value("memory"); value.IsDefined()) {
    auto memory = ReadSize(value, path.Key("memory"));
    if (memory) resources.memory = *memory;
    ok = ok && memory.has_value();
  }
  if (YamlNode value = fields.value("gpus"); value.IsDefined()) {
    auto gpus = ReadInt(value, path.Key("gpus"), 0, std::numeric_limits<uint32_t>::max());
    if (gpus) resources.gpus = static_cast<uint32_t>(*gpus);
    ok = ok && gpus.has_value();
  }
  if (YamlNode value = fields.value("labels"); value.IsDefined() && !value.IsNull()) {
    const FieldPath labels = path.Key("labels");
    ForEachEntry(value, labels, "label",
                 [&](std::string_view name, const YamlNode&, const YamlNode& text, bool repeated) {
                   auto read = ReadString(text, labels.Key(name));
                   if (!read) ok = false;
                   if (read && !repeated) resources.labels.emplace(std::string(name), *read);
                 });
  }
  return ok ? std::optional<Resources>(resources) : std::nullopt;
}

std::optional<RetryPolicy> Loader::ReadRetries(const YamlNode& node, const FieldPath& path) {
  constexpr int64_t kMaxLimit = std::numeric_limits<uint32_t>::max();
  RetryPolicy retries;
  if (node.IsScalar()) {
    auto limit = ReadInt(node, path, 0, kMaxLimit);
    if (!limit) return std::nullopt;
    retries.limit = static_cast<uint32_t>(*limit);
    return retries;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "an integer or {limit, backoff, factor, max_backoff}");
    return std::nullopt;
  }
  Fields fields(RetryKeys());
  ReadFields(node, path, &fields);
  bool ok = true;
  if (YamlNode value = fields.value("limit"); value.IsDefined()) {
    auto limit = ReadInt(value, path.Key("limit"), 0, kMaxLimit);
    if (limit) retries.limit = static_cast<uint32_t>(*limit);
    ok = ok && limit.has_value();
  }
  if (YamlNode value = fields.value("backoff"); value.IsDefined()) {
    auto backoff = ReadDuration(value, path.Key("backoff"));
    if (backoff) retries.backoff = *backoff;
    ok = ok && backoff.has_value();
  }
  if (YamlNode value = fields.value("factor"); value.IsDefined()) {
    auto factor = ReadNumber(value, path.Key("factor"), 1, /*min_inclusive=*/true);
    if (factor) retries.factor = *factor;
    ok = ok && factor.has_value();
  }
  if (YamlNode value = fields.value("max_backoff"); value.IsDefined()) {
    auto max_backoff = ReadDuration(value, path.Key("max_backoff"));
    if (max_backoff) retries.max_backoff = *max_backoff;
    ok = ok && max_backoff.has_value();
  }
  return ok ? std::optional<RetryPolicy>(retries) : std::nullopt;
}

std::optional<Duration> Loader::ReadTimeout(const YamlNode& node, const FieldPath& path) {
  auto timeout = ReadDuration(node, path);
  if (timeout && timeout->count() <= 0) {
    Error(node, path, "must be greater than 0");
    return std::nullopt;
  }
  return timeout;
}

void Loader::ReadCheckpoints(const YamlNode& node, const FieldPath& path,
                             CheckpointSpec* checkpoints) {
  constexpr std::string_view kExpected = "true, false or {keep, tier}";
  if (node.IsScalar() && ParseYamlBool(node.Scalar())) {
    checkpoints->enabled = *ParseYamlBool(node.Scalar());
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, kExpected);
    return;
  }
  checkpoints->enabled = true;
  Fields fields(CheckpointKeys());
  ReadFields(node, path, &fields);
  if (YamlNode value = fields.value("keep"); value.IsDefined()) {
    if (auto keep = ReadInt(value, path.Key("keep"), 1, std::numeric_limits<uint32_t>::max())) {
      checkpoints->keep = static_cast<uint32_t>(*keep);
    }
  }
  if (YamlNode value = fields.value("tier"); value.IsDefined()) {
    if (auto tier = ReadTierName(value, path.Key("tier"))) checkpoints->tier = std::move(*tier);
  }
}

void Loader::ReadSlurm(const YamlNode& node, const FieldPath& path, SlurmStageOptions* slurm) {
  if (node.IsNull()) return;
  Fields fields(SlurmKeys());
  if (!ReadFields(node, path, &fields)) return;
  if (YamlNode value = fields.value("items_per_job"); value.IsDefined()) {
    if (auto items =
            ReadInt(value, path.Key("items_per_job"), 1, std::numeric_limits<uint32_t>::max())) {
      slurm->items_per_job = static_cast<uint32_t>(*items);
    }
  }
  YamlNode options = fields.value("options");
  if (!options.IsDefined() || options.IsNull()) return;
  const FieldPath options_path = path.Key("options");
  if (!options.IsSequence()) {
    WrongType(options, options_path, "a list of sbatch arguments");
    return;
  }
  // What tierflow tracks its jobs by, or runs them with, is its own.
  static constexpr std::string_view kReserved[] = {
      "--job-name", "-J", "--comment",  "--array",   "-a",           "--output", "-o",
      "--error",    "-e", "--parsable", "--requeue", "--no-requeue", "--wrap"};
  for (size_t i = 0; i < Count(options); ++i) {
    const YamlNode item = options.at(i);
    const FieldPath item_path = options_path.Index(i);
    auto text = ReadScalar(item, item_path, "an sbatch argument");
    if (!text) continue;
    if (text->empty()) {
      Error(item, item_path, "empty sbatch argument");
      continue;
    }
    const std::string_view name = text->substr(0, text->find('='));
    const bool reserved =
        std::any_of(std::begin(kReserved), std::end(kReserved), [&](std::string_view r) {
          return name == r || (r.size() == 2 && text->starts_with(r) && !text->starts_with("--"));
        });
    if (reserved) {
      Error(item, item_path,
            StrCat("sbatch option ", Quote(name),
                   " is tierflow's own: it names, tracks and logs its jobs with it"));
      continue;
    }
    slurm->options.emplace_back(*text);
  }
}

std::optional<std::string> Loader::ReadTierName(const YamlNode& node, const FieldPath& path) {
  auto tier = ReadString(node, path);
  if (tier && tier->empty()) {
    WrongType(node, path, "a tier name");
    return std::nullopt;
  }
  return tier;
}

void Loader::ReadEnv(const YamlNode& node, const FieldPath& path,
                     std::map<std::string, std::string>* env) {
  if (node.IsNull()) return;
  ForEachEntry(
      node, path, "key",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath var_path = path.Key(name);
        if (CheckName(name, key, var_path, "environment variable", IsIdentifier(name),
                      kIdentifierRule) &&
            name.starts_with("TIERFLOW_")) {
          Error(key, var_path,
                StrCat("environment variable ", Quote(name),
                       " is reserved: tierflow sets the TIERFLOW_* variables"));
        }
        auto text = ReadString(value, var_path);
        if (text && !repeated) env->emplace(std::string(name), std::move(*text));
      });
}

}  // namespace tierflow::dag::internal
