// The pipeline model: what a user's YAML means once it has been parsed,
// validated and had its params resolved. Plain values, no behaviour; the
// loader (loader.h) builds it and the graph (graph.h) expands it into tasks.
// docs/pipeline-format.md is the user-facing description of every field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/durability.h"
#include "common/units.h"

namespace tierflow::dag {

// Position of a YAML node in its file, 1-based; 0 when unknown.
struct Location {
  int line = 0;
  int column = 0;
};

enum class StageKind { kIngest, kClean, kFeature, kStage, kTrain, kCheckpoint, kGeneric };

std::string_view StageKindName(StageKind kind);
std::optional<StageKind> ParseStageKind(std::string_view name);
// All kinds, for did-you-mean and docs, in pipeline order.
const std::vector<std::string>& StageKindNames();

enum class AccessPattern { kNone, kSequential, kRandom };

std::string_view AccessPatternName(AccessPattern pattern);
std::optional<AccessPattern> ParseAccessPattern(std::string_view name);

// What a stage does to storage (DESIGN.md "Why stages need different
// storage"). Each kind has a default (DefaultIoProfile); a stage's `io:`
// block overrides single fields. Byte counts of 0 mean "unknown".
struct IoProfile {
  AccessPattern read = AccessPattern::kNone;
  AccessPattern write = AccessPattern::kNone;
  uint64_t block_size = 0;                    // typical size of one read or write
  uint64_t read_bytes = 0;                    // expected bytes read per task, per pass
  uint64_t write_bytes = 0;                   // expected bytes written per task
  uint32_t read_passes = 1;                   // times the inputs are read (training epochs)
  uint32_t streams = 1;                       // concurrent I/O streams per task
  Durability durability = Durability::kNode;  // what the outputs need
  bool operator==(const IoProfile&) const = default;
};

IoProfile DefaultIoProfile(StageKind kind);

enum class ParamType { kString, kInt, kFloat, kBool, kList };

std::string_view ParamTypeName(ParamType type);

// A pipeline parameter. `value` is the default unless overridden with
// `--param name=value`; lists hold their elements as strings.
struct Param {
  std::string name;
  ParamType type = ParamType::kString;
  std::string description;
  std::string value;               // scalar value as text (int/float/bool normalised)
  std::vector<std::string> items;  // elements when type == kList
  bool overridden = false;
  Location location;
};

// The command of a stage: either an argv vector, run without a shell, or a
// shell script run with `/bin/sh -c`. Params and the foreach item reach the
// command as environment variables (TIERFLOW_PARAM_<NAME>, TIERFLOW_ITEM);
// argv elements may also hold `{{ params.NAME }}` / `{{ item }}`, which are
// substituted whole into that one argument and are never re-parsed by a shell.
struct Command {
  std::vector<std::string> argv;  // set when the YAML gave a list
  std::string shell;              // set when the YAML gave a string
  bool is_shell() const { return argv.empty(); }
};

// `inputs: {name: stage.output}`: a task's input is the output of another
// stage. A reference to a foreach stage's output gathers all of its items,
// unless the reader is mapped over them (`each`).
struct InputRef {
  std::string name;     // becomes TIERFLOW_INPUT_<NAME>
  std::string stage;    // producing stage
  std::string output;   // output name on that stage
  bool stream = false;  // consumer may start before the whole input is staged
  // Item-wise: the consumer is mapped over the producer's items (`foreach:
  // {over: STAGE}`, or `each: true`) and each of its tasks reads only the
  // producer task with its own item. False: a gather of every item when the
  // producer is a foreach stage (docs/pipeline-format.md "Fan-out").
  bool each = false;
  Location location;
};

struct OutputSpec {
  std::string name;                      // becomes TIERFLOW_OUTPUT_<NAME>
  uint64_t size_hint = 0;                // expected bytes per task, 0 unknown
  std::optional<Durability> durability;  // overrides the stage's io.durability
  Location location;
};

struct Resources {
  double cpus = 1;
  uint64_t memory = 0;  // bytes; 0 = no limit declared
  uint32_t gpus = 0;
  // Labels a worker must have (cluster mode: `tierflow worker --label`).
  std::map<std::string, std::string> labels;
};

// A stage's own `slurm:` options (docs/slurm.md): read by the Slurm
// executor, ignored by the others.
struct SlurmStageOptions {
  uint32_t items_per_job = 0;        // `items_per_job`; 0: the packing rule decides
  std::vector<std::string> options;  // sbatch arguments, after the run's --slurm-option ones
};

// Retries with exponential backoff and jitter: attempt n (1-based) waits
// min(backoff * factor^(n-1), max_backoff) before retry n.
struct RetryPolicy {
  uint32_t limit = 0;
  Duration backoff = std::chrono::seconds(10);
  double factor = 2.0;
  Duration max_backoff = std::chrono::minutes(10);
};

struct CheckpointSpec {
  bool enabled = false;
  uint32_t keep = 3;  // durable checkpoints kept
  std::string tier;   // durable tier to flush to; empty = placement decides
};

// `foreach: {from: STAGE.OUTPUT, format: lines|json}`: the items are read
// at run time from the list a task of STAGE wrote (dynamic fan-out).
enum class ItemListFormat { kLines, kJson };

// Items of one foreach stage at most, static or dynamic (whose lists are
// checked against it at run time, with the loader's wording).
inline constexpr uint64_t kMaxForeachItems = 1'000'000;

struct DynamicItems {
  std::string stage;
  std::string output;
  ItemListFormat format = ItemListFormat::kLines;
  Location location;
};

// Which params a stage sees (as TIERFLOW_PARAM_<NAME> and templates) and is
// keyed by in the task cache (docs/pipeline-format.md "Params").
enum class ParamScope {
  kReferenced,  // no `params:` key: those its run and env reference
  kDeclared,    // `params: [a, b]`: those, plus the referenced ones
  kAll,         // `params: all`: every param of the pipeline
};

struct Stage {
  std::string name;
  Location location;  // of the stage's key under `stages:`
  StageKind kind = StageKind::kGeneric;
  std::string description;
  Command run;
  std::vector<std::string> needs;  // explicit ordering-only dependencies
  std::vector<InputRef> inputs;
  std::vector<OutputSpec> outputs;
  IoProfile io;
  Resources resources;
  RetryPolicy retries;
  std::optional<Duration> timeout;
  // Fan-out: one task per item; absent means a single task. Static items
  // are known when the pipeline loads; a dynamic stage's are set when it is
  // expanded at run time (Dynamic()).
  std::optional<std::vector<std::string>> foreach;
  // `foreach: {over: STAGE}`: item-wise map over that foreach stage's items
  // (its inputs from STAGE are `each`); "" when not mapped.
  std::string foreach_over;
  // `foreach: {from: ...}`: dynamic fan-out over an upstream task's list.
  std::optional<DynamicItems> foreach_from;
  // The params it sees and is keyed by, by name, in the pipeline's order
  // (resolved by the loader from `scope`, its run, env and `params:`).
  ParamScope param_scope = ParamScope::kReferenced;
  std::vector<std::string> params;
  bool cache = true;
  std::string tier;  // explicit placement override, empty = placement decides
  CheckpointSpec checkpoints;
  std::map<std::string, std::string> env;  // declared environment, part of the cache key
  SlurmStageOptions slurm;

  // Stages this one depends on: `needs` plus the stages its inputs name,
  // without duplicates, in first-mention order.
  std::vector<std::string> Dependencies() const;
  size_t TaskCount() const { return foreach ? foreach->size() : (dynamic ? 0 : 1); }
  // A fan-out whose items are known at run time only: `foreach: {from:}`,
  // or a map over such a stage. Its `foreach` is set once expanded.
  bool Dynamic() const { return dynamic; }
  bool IsForeach() const { return foreach.has_value() || dynamic; }
  bool dynamic = false;  // set by the loader; see Dynamic()
};

struct Pipeline {
  std::string file;  // as given to the loader
  std::string name;
  std::string description;
  std::vector<Param> params;
  std::vector<Stage> stages;  // in file order

  // Index into `stages`, or -1.
  int FindStage(std::string_view name) const;
  const Param* FindParam(std::string_view name) const;
};

}  // namespace tierflow::dag
