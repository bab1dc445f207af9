#include "dag/pipeline.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"

namespace tierflow::dag {
namespace {

constexpr StageKind kAllKinds[] = {StageKind::kIngest, StageKind::kClean, StageKind::kFeature,
                                   StageKind::kStage,  StageKind::kTrain, StageKind::kCheckpoint,
                                   StageKind::kGeneric};

constexpr AccessPattern kAllPatterns[] = {AccessPattern::kNone, AccessPattern::kSequential,
                                          AccessPattern::kRandom};

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

}  // namespace

std::string_view StageKindName(StageKind kind) {
  switch (kind) {
    case StageKind::kIngest:
      return "ingest";
    case StageKind::kClean:
      return "clean";
    case StageKind::kFeature:
      return "feature";
    case StageKind::kStage:
      return "stage";
    case StageKind::kTrain:
      return "train";
    case StageKind::kCheckpoint:
      return "checkpoint";
    case StageKind::kGeneric:
      return "generic";
  }
  return "unknown";
}

std::optional<StageKind> ParseStageKind(std::string_view name) {
  for (StageKind kind : kAllKinds) {
    if (StageKindName(kind) == name) return kind;
  }
  return std::nullopt;
}

const std::vector<std::string>& StageKindNames() {
  static const std::vector<std::string>* const names = [] {
    auto* list = new std::vector<std::string>;
    for (StageKind kind : kAllKinds) list->emplace_back(StageKindName(kind));
    return list;
  }();
  return *names;
}

std::string_view AccessPatternName(AccessPattern pattern) {
  switch (pattern) {
    case AccessPattern::kNone:
      return "none";
    case AccessPattern::kSequential:
      return "sequential";
    case AccessPattern::kRandom:
      return "random";
  }
  return "unknown";
}

std::optional<AccessPattern> ParseAccessPattern(std::string_view name) {
  for (AccessPattern pattern : kAllPatterns) {
    if (AccessPatternName(pattern) == name) return pattern;
  }
  return std::nullopt;
}

// The table in docs/pipeline-format.md ("Defaults per kind"); keep the two
// in step. Expected byte counts are unknown until a stage declares them.
IoProfile DefaultIoProfile(StageKind kind) {
  using enum AccessPattern;
  auto profile = [](AccessPattern read, AccessPattern write, uint64_t block, uint32_t passes,
                    uint32_t streams, Durability durability) {
    IoProfile io;
    io.read = read;
    io.write = write;
    io.block_size = block;
    io.read_passes = passes;
    io.streams = streams;
    io.durability = durability;
    return io;
  };
  switch (kind) {
    case StageKind::kIngest:
      return profile(kNone, kSequential, 8 * kMiB, 1, 8, Durability::kDurable);
    case StageKind::kClean:
      return profile(kRandom, kSequential, 64 * kKiB, 1, 4, Durability::kNode);
    case StageKind::kFeature:
      return profile(kSequential, kSequential, 4 * kMiB, 1, 16, Durability::kNode);
    case StageKind::kStage:
      return profile(kSequential, kSequential, 1 * kMiB, 1, 4, Durability::kVolatile);
    case StageKind::kTrain:
      return profile(kRandom, kSequential, 256 * kKiB, 10, 8, Durability::kDurable);
    case StageKind::kCheckpoint:
      return profile(kSequential, kSequential, 16 * kMiB, 1, 4, Durability::kDurable);
    case StageKind::kGeneric:
      break;
  }
  return profile(kSequential, kSequential, 1 * kMiB, 1, 1, Durability::kNode);
}

std::string_view ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kString:
      return "string";
    case ParamType::kInt:
      return "int";
    case ParamType::kFloat:
      return "float";
    case ParamType::kBool:
      return "bool";
    case ParamType::kList:
      return "list";
  }
  return "unknown";
}

std::vector<std::string> Stage::Dependencies() const {
  std::vector<std::string> deps;
  const size_t mentions = needs.size() + inputs.size();
  deps.reserve(mentions);
  // Most stages name a handful of dependencies, where a scan beats hashing;
  // a gather stage may name thousands, where a scan would be quadratic.
  constexpr size_t kScanLimit = 16;
  absl::flat_hash_set<std::string_view> seen;
  if (mentions > kScanLimit) seen.reserve(mentions);
  auto add = [&](const std::string& name) {
    bool fresh = mentions > kScanLimit ? seen.insert(name).second
                                       : std::find(deps.begin(), deps.end(), name) == deps.end();
    if (fresh) deps.push_back(name);
  };
  for (const std::string& need : needs) add(need);
  for (const InputRef& input : inputs) add(input.stage);
  if (foreach_from) add(foreach_from->stage);
  return deps;
}

int Pipeline::FindStage(std::string_view name) const {
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const Param* Pipeline::FindParam(std::string_view name) const {
  for (const Param& param : params) {
    if (param.name == name) return &param;
  }
  return nullptr;
}

}  // namespace tierflow::dag
