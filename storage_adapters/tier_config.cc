#include "storage_adapters/tier_config.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/strings.h"
#include "common/yaml_fields.h"
#include "common/yaml_tree.h"

namespace tierflow::storage {
namespace fs = std::filesystem;
namespace {

const KeyList& TopKeys() {
  static const auto* const keys = new KeyList{"tiers"};
  return *keys;
}
const KeyList& TierKeys() {
  static const auto* const keys =
      new KeyList{"adapter",    "root",       "endpoint",       "bucket",         "region",
                  "prefix",     "path_style", "access_key_env", "secret_key_env", "scope",
                  "durability", "capacity",   "profile",        "timeout",        "retry"};
  return *keys;
}
const KeyList& ProfileKeys() {
  static const auto* const keys =
      new KeyList{"seq_read_mb_s", "seq_write_mb_s", "rand_read_iops", "latency_us"};
  return *keys;
}
const KeyList& TimeoutKeys() {
  static const auto* const keys = new KeyList{"stall", "min_rate"};
  return *keys;
}
const KeyList& RetryKeys() {
  static const auto* const keys = new KeyList{"backoff", "max_backoff", "budget"};
  return *keys;
}
const std::vector<std::string> kAdapters = {"posix", "s3"};
const std::vector<std::string> kScopes = {"node", "cluster"};
const std::vector<std::string> kDurabilities = {"volatile", "node", "durable", "archive"};
const std::vector<std::string> kBooleans = {"true", "false"};

bool ValidName(std::string_view name) {
  static const std::regex pattern("[a-z][a-z0-9_-]{0,62}");
  return std::regex_match(name.begin(), name.end(), pattern);
}

bool ValidEnvName(std::string_view name) {
  static const std::regex pattern("[A-Za-z_][A-Za-z0-9_]*");
  return std::regex_match(name.begin(), name.end(), pattern);
}

// A figure of a tier's profile: a plain, non-negative number.
std::optional<double> ReadFigure(FieldReader& in, const YamlNode& node, const FieldPath& path) {
  std::optional<std::string_view> text = in.ReadScalar(node, path);
  if (!text) return std::nullopt;
  std::optional<double> value = node.IsPlain() ? ParseYamlFloat(*text) : std::nullopt;
  if (!value || *value < 0) {
    in.Error(node, path, StrCat("expected a non-negative number, got '", *text, "'"));
    return std::nullopt;
  }
  return value;
}

// A size of more than 0 bytes; `zero` says what is wrong with 0.
std::optional<uint64_t> ReadPositiveSize(FieldReader& in, const YamlNode& node,
                                         const FieldPath& path, std::string_view zero) {
  std::optional<std::string_view> text = in.ReadScalar(node, path);
  if (!text) return std::nullopt;
  std::optional<uint64_t> bytes = in.Check(node, path, ParseSize(*text));
  if (bytes && *bytes == 0) {
    in.Error(node, path, std::string(zero));
    return std::nullopt;
  }
  return bytes;
}

// The duration `key` of `fields` into `out`, if it is given; 0 is an error
// unless `zero_ok`.
void ReadTiming(FieldReader& in, const Fields& fields, const FieldPath& path, std::string_view key,
                std::chrono::milliseconds& out, bool zero_ok) {
  YamlNode value = fields.value(key);
  if (!value.IsDefined()) return;
  const FieldPath field = path.Key(key);
  std::optional<std::string_view> text = in.ReadScalar(value, field);
  if (!text) return;
  std::optional<Duration> parsed = in.Check(value, field, ParseDuration(*text));
  if (!parsed) return;
  if (!zero_ok && parsed->count() <= 0) {
    in.Error(value, field, StrCat("must be more than 0, got '", *text, "'"));
  } else {
    out = *parsed;
  }
}

void ReadProfile(FieldReader& in, const YamlNode& node, const FieldPath& path, TierConfig& tier) {
  if (!node.IsMap()) {
    in.Error(node, path, StrCat("expected a map, got ", node.Describe()));
    return;
  }
  Fields fields(ProfileKeys());
  in.ReadFields(node, path, &fields);
  TierProfile profile;
  auto number = [&](std::string_view key, double& out) {
    YamlNode value = fields.value(key);
    if (!value.IsDefined()) return;
    if (std::optional<double> n = ReadFigure(in, value, path.Key(key))) out = *n;
  };
  number("seq_read_mb_s", profile.seq_read_mb_s);
  number("seq_write_mb_s", profile.seq_write_mb_s);
  number("rand_read_iops", profile.rand_read_iops);
  number("latency_us", profile.latency_us);
  tier.profile = profile;
}

// An s3 tier's `timeout` and `retry` maps (docs/tiers.md "Timeouts and
// retries").
void ReadS3Timing(FieldReader& in, const Fields& tier_fields, const FieldPath& path,
                  TierConfig& tier) {
  S3Timing& timing = tier.s3_timing;
  if (YamlNode timeout = tier_fields.value("timeout"); timeout.IsDefined()) {
    const FieldPath where = path.Key("timeout");
    if (!timeout.IsMap()) {
      in.Error(timeout, where,
               StrCat("expected a map (stall, min_rate), got ", timeout.Describe()));
    } else {
      Fields fields(TimeoutKeys());
      in.ReadFields(timeout, where, &fields);
      ReadTiming(in, fields, where, "stall", timing.stall, false);
      if (YamlNode rate = fields.value("min_rate"); rate.IsDefined()) {
        if (auto bytes = ReadPositiveSize(in, rate, where.Key("min_rate"),
                                          "bytes per second must be more than 0 (like 1MB)")) {
          timing.min_rate = *bytes;
        }
      }
    }
  }
  if (YamlNode retry = tier_fields.value("retry"); retry.IsDefined()) {
    const FieldPath where = path.Key("retry");
    if (!retry.IsMap()) {
      in.Error(retry, where,
               StrCat("expected a map (backoff, max_backoff, budget), got ", retry.Describe()));
    } else {
      Fields fields(RetryKeys());
      in.ReadFields(retry, where, &fields);
      ReadTiming(in, fields, where, "backoff", timing.backoff, true);
      ReadTiming(in, fields, where, "max_backoff", timing.max_backoff, true);
      ReadTiming(in, fields, where, "budget", timing.budget, true);
      if (timing.max_backoff < timing.backoff) {
        in.Error(retry, where,
                 StrCat("max_backoff (", FormatDuration(timing.max_backoff),
                        ") is less than backoff (", FormatDuration(timing.backoff), ")"));
      }
    }
  }
}

// What an adapter needs, and nothing it cannot use; posix roots resolve
// against `base`.
void CheckAdapterFields(FieldReader& in, const YamlNode& node, const Fields& fields,
                        const FieldPath& path, const fs::path& base, TierConfig& tier) {
  auto require = [&](std::string_view field, const std::string& value, std::string_view what) {
    if (value.empty()) in.Error(node, path, StrCat("missing '", field, "': ", what));
  };
  auto forbid = [&](std::string_view field) {
    if (YamlNode value = fields.value(field); value.IsDefined()) {
      in.Error(value, path.Key(field),
               StrCat("'", field, "' is for ", tier.adapter == "posix" ? "s3" : "posix",
                      " tiers; this one is ", tier.adapter));
    }
  };
  if (tier.adapter == "posix") {
    require("root", tier.root, "the folder that holds this tier's artifacts");
    for (std::string_view field : {"endpoint", "bucket", "region", "prefix", "path_style",
                                   "access_key_env", "secret_key_env", "timeout", "retry"}) {
      forbid(field);
    }
    if (!tier.root.empty()) {
      // A root starting with a variable ($TMPDIR/x) is expanded where it is
      // used (a Slurm job on its node: worker/job_node_side.h), not here.
      fs::path root(tier.root);
      if (tier.root.front() != '$') {
        tier.root = (root.is_absolute() ? root : base / root).lexically_normal().string();
      }
    }
  } else if (tier.adapter == "s3") {
    require("endpoint", tier.endpoint, "the server, as http://host:port or https://host");
    require("bucket", tier.bucket, "the bucket that holds this tier's artifacts");
    require("access_key_env", tier.access_key_env,
            "the environment variable holding the access key id");
    require("secret_key_env", tier.secret_key_env,
            "the environment variable holding the secret key");
    forbid("root");
    ReadS3Timing(in, fields, path, tier);
    if (!tier.endpoint.empty() && tier.endpoint.rfind("http://", 0) != 0 &&
        tier.endpoint.rfind("https://", 0) != 0) {
      in.Error(fields.value("endpoint"), path.Key("endpoint"),
               StrCat("expected http://host:port or https://host, got '", tier.endpoint, "'"));
    }
    for (auto [field, value] :
         {std::pair<std::string_view, const std::string*>{"access_key_env", &tier.access_key_env},
          {"secret_key_env", &tier.secret_key_env}}) {
      if (!value->empty() && !ValidEnvName(*value)) {
        in.Error(fields.value(field), path.Key(field),
                 StrCat("expected the name of an environment variable (like ",
                        field == "access_key_env" ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                        "), got '", *value, "': put the secret itself in the environment"));
      }
    }
  }
}

void ReadTier(FieldReader& in, const YamlNode& key, const YamlNode& node, const FieldPath& path,
              const fs::path& base, TierSet& set) {
  TierConfig tier;
  tier.name = std::string(key.Scalar());
  tier.line = key.line();
  if (!ValidName(tier.name)) {
    in.Error(key, path,
             "a tier name is 1-63 characters: lower-case letters, digits, '-' and '_', "
             "starting with a letter");
  }
  if (!node.IsMap()) {
    in.Error(node, path, StrCat("expected a map, got ", node.Describe()));
    return;
  }
  Fields fields(TierKeys());
  in.ReadFields(node, path, &fields);
  auto text = [&](std::string_view field, std::string& out) {
    YamlNode value = fields.value(field);
    if (!value.IsDefined()) return;
    if (std::optional<std::string_view> t = in.ReadScalar(value, path.Key(field))) {
      out = std::string(*t);
    }
  };
  auto choice = [&](std::string_view field, const std::vector<std::string>& words) {
    YamlNode value = fields.value(field);
    return value.IsDefined() ? in.ReadChoice(value, path.Key(field), "value", words) : std::nullopt;
  };
  if (!fields.has("adapter")) {
    in.Error(node, path, "missing 'adapter' (posix or s3)");
  } else if (std::optional<size_t> i = choice("adapter", kAdapters)) {
    tier.adapter = kAdapters[*i];
  }
  text("root", tier.root);
  text("endpoint", tier.endpoint);
  text("bucket", tier.bucket);
  text("region", tier.region);
  text("prefix", tier.prefix);
  text("access_key_env", tier.access_key_env);
  text("secret_key_env", tier.secret_key_env);
  if (std::optional<size_t> i = choice("path_style", kBooleans)) tier.path_style = *i == 0;
  if (std::optional<size_t> i = choice("scope", kScopes)) tier.scope = static_cast<Scope>(*i);
  if (std::optional<size_t> i = choice("durability", kDurabilities)) {
    tier.durability = static_cast<Durability>(*i);
  }
  if (YamlNode capacity = fields.value("capacity"); capacity.IsDefined()) {
    tier.capacity = ReadPositiveSize(in, capacity, path.Key("capacity"),
                                     "a tier's capacity must be more than 0 bytes");
  }
  if (YamlNode profile = fields.value("profile"); profile.IsDefined()) {
    ReadProfile(in, profile, path.Key("profile"), tier);
  }
  CheckAdapterFields(in, node, fields, path, base, tier);
  set.tiers.push_back(std::move(tier));
}

// The whole document: a map with `tiers`, a map from name to settings.
void ReadTierSet(FieldReader& in, const YamlNode& root, const fs::path& base, TierSet& set) {
  const FieldPath top;
  if (!root.IsMap()) {
    in.Error(root, top, StrCat("expected a map with 'tiers', got ", root.Describe()));
    return;
  }
  Fields fields(TopKeys());
  in.ReadFields(root, top, &fields);
  YamlNode tiers = fields.value("tiers");
  const FieldPath tiers_path = top.Key("tiers");
  if (!tiers.IsDefined()) {
    in.Error(root, top, "missing 'tiers': a map from tier name to its settings");
  } else if (!tiers.IsMap() || tiers.size() == 0) {
    in.Error(tiers, tiers_path,
             StrCat("expected a map from tier name to its settings, got ",
                    tiers.IsMap() ? "an empty map" : tiers.Describe()));
  } else {
    in.ForEachEntry(
        tiers, tiers_path, "tier",
        [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
          if (!repeated) ReadTier(in, key, value, tiers_path.Key(name), base, set);
        });
  }
}

}  // namespace

std::string_view ScopeName(Scope scope) { return kScopes[static_cast<size_t>(scope)]; }

std::string TierConfig::Location() const {
  if (adapter == "s3") {
    return StrCat("s3://", bucket, prefix.empty() ? "" : StrCat("/", prefix), " at ", endpoint);
  }
  return root;
}

const TierConfig* TierSet::Find(std::string_view name) const {
  for (const TierConfig& tier : tiers) {
    if (tier.name == name) return &tier;
  }
  return nullptr;
}

absl::StatusOr<TierSet> LoadTierText(std::string_view text, const std::string& file,
                                     std::vector<Diagnostic>* diagnostics) {
  FieldReader in(file, Wording::kSuggestAndList);
  TierSet set;
  set.file = file;
  absl::StatusOr<std::unique_ptr<YamlDocument>> document = YamlDocument::Parse(text);
  if (!document.ok()) {
    in.Report(SyntaxDiagnostic(file, document.status()));
  } else {
    ReadTierSet(in, (*document)->root(), fs::absolute(fs::path(file)).parent_path(), set);
  }
  std::vector<Diagnostic> found = in.TakeDiagnostics();
  SortDiagnostics(found);
  if (diagnostics != nullptr) *diagnostics = found;
  if (!found.empty()) return DiagnosticsToStatus(found);
  return set;
}
absl::StatusOr<TierSet> LoadTierFile(const std::string& file,
                                     std::vector<Diagnostic>* diagnostics) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        StrCat(file, ": cannot read the tiers file: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return LoadTierText(text.str(), file, diagnostics);
}

std::string DefaultRamRoot() {
  const char* root = std::getenv("TIERFLOW_RAM_ROOT");
  if (root != nullptr && *root != '\0') return root;
  return StrCat("/dev/shm/tierflow-", getuid());
}

TierSet DefaultTiers(const std::string& state_dir) {
  const fs::path state = fs::absolute(fs::path(state_dir)).lexically_normal();
  TierSet set;
  TierConfig ram;
  ram.name = "ram";
  ram.adapter = "posix";
  ram.root = DefaultRamRoot();
  ram.scope = Scope::kNode;
  ram.durability = Durability::kVolatile;
  TierConfig local;
  local.name = "local";
  local.adapter = "posix";
  local.root = (state / "tiers" / "local").string();
  local.scope = Scope::kNode;
  local.durability = Durability::kNode;
  TierConfig bulk;
  bulk.name = "bulk";
  bulk.adapter = "posix";
  bulk.root = (state / "tiers" / "bulk").string();
  bulk.scope = Scope::kCluster;
  bulk.durability = Durability::kDurable;
  set.tiers = {ram, local, bulk};
  return set;
}

}  // namespace tierflow::storage
