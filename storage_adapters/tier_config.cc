#include "storage_adapters/tier_config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unordered_set>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "common/yaml_tree.h"

namespace tierflow::storage {
namespace fs = std::filesystem;
namespace {

const std::vector<std::string> kTierKeys = {
    "adapter",    "root",       "endpoint",       "bucket",         "region",
    "prefix",     "path_style", "access_key_env", "secret_key_env", "scope",
    "durability", "capacity",   "profile",        "timeout",        "retry"};
const std::vector<std::string> kProfileKeys = {"seq_read_mb_s", "seq_write_mb_s", "rand_read_iops",
                                               "latency_us"};
const std::vector<std::string> kTimeoutKeys = {"stall", "min_rate"};
const std::vector<std::string> kRetryKeys = {"backoff", "max_backoff", "budget"};
const std::vector<std::string> kAdapters = {"posix", "s3"};
const std::vector<std::string> kScopes = {"node", "cluster"};
const std::vector<std::string> kDurabilities = {"volatile", "node", "durable", "archive"};

// Collects problems as `file:line:col: field.path: message`.
class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void Error(const YamlNode& node, std::string path, std::string message) {
    diagnostics_.push_back(
        Diagnostic{file_, node.line(), node.column(), std::move(path), std::move(message)});
  }

  // The node's text when it is a scalar, else an error.
  std::optional<std::string_view> Text(const YamlNode& node, const std::string& path) {
    if (node.IsScalar()) return node.Scalar();
    Error(node, path, StrCat("expected a string, got ", node.Describe()));
    return std::nullopt;
  }

  // One of `words`, else an error with a suggestion.
  std::optional<size_t> OneOf(const YamlNode& node, const std::string& path,
                              const std::vector<std::string>& words) {
    std::optional<std::string_view> text = Text(node, path);
    if (!text) return std::nullopt;
    for (size_t i = 0; i < words.size(); ++i) {
      if (words[i] == *text) return i;
    }
    Error(node, path,
          StrCat("unknown value '", *text, "'", DidYouMean(*text, words), "; expected one of ",
                 absl::StrJoin(words, ", ")));
    return std::nullopt;
  }

  std::optional<double> Number(const YamlNode& node, const std::string& path) {
    std::optional<std::string_view> text = Text(node, path);
    if (!text) return std::nullopt;
    char* end = nullptr;
    const std::string copy(*text);
    double value = std::strtod(copy.c_str(), &end);
    if (copy.empty() || end != copy.c_str() + copy.size() || !(value >= 0) || !node.IsPlain()) {
      Error(node, path, StrCat("expected a non-negative number, got '", *text, "'"));
      return std::nullopt;
    }
    return value;
  }

  // Keys of `map` not in `known` are errors with a suggestion; duplicates too.
  void CheckKeys(const YamlNode& map, const std::string& path,
                 const std::vector<std::string>& known) {
    std::unordered_set<std::string_view> seen;
    for (size_t i = 0; i < map.size(); ++i) {
      YamlNode key = map.entry(i).key;
      std::string_view name = key.Scalar();
      if (!seen.insert(name).second) {
        Error(key, path.empty() ? std::string(name) : StrCat(path, ".", name), "duplicate key");
        continue;
      }
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        const std::string where = path.empty() ? std::string(name) : StrCat(path, ".", name);
        Error(key, where,
              StrCat("unknown key '", name, "'", DidYouMean(name, known), "; expected one of ",
                     absl::StrJoin(known, ", ")));
      }
    }
  }

  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }

 private:
  std::string file_;
  std::vector<Diagnostic> diagnostics_;
};

bool ValidName(std::string_view name) {
  static const std::regex pattern("[a-z][a-z0-9_-]{0,62}");
  return std::regex_match(name.begin(), name.end(), pattern);
}

bool ValidEnvName(std::string_view name) {
  static const std::regex pattern("[A-Za-z_][A-Za-z0-9_]*");
  return std::regex_match(name.begin(), name.end(), pattern);
}

void ParseProfile(Checker& check, const YamlNode& node, const std::string& path, TierConfig& tier) {
  if (!node.IsMap()) {
    check.Error(node, path, StrCat("expected a map, got ", node.Describe()));
    return;
  }
  check.CheckKeys(node, path, kProfileKeys);
  TierProfile profile;
  auto number = [&](std::string_view key, double& out) {
    YamlNode value = node.Find(key);
    if (!value.IsDefined()) return;
    if (std::optional<double> n = check.Number(value, StrCat(path, ".", key))) out = *n;
  };
  number("seq_read_mb_s", profile.seq_read_mb_s);
  number("seq_write_mb_s", profile.seq_write_mb_s);
  number("rand_read_iops", profile.rand_read_iops);
  number("latency_us", profile.latency_us);
  tier.profile = profile;
}

// An s3 tier's `timeout` and `retry` maps (docs/tiers.md "Timeouts and
// retries").
void ParseS3Timing(Checker& check, const YamlNode& node, const std::string& path,
                   TierConfig& tier) {
  auto duration = [&](const YamlNode& map, const std::string& where, std::string_view key,
                      std::chrono::milliseconds& out, bool zero_ok) {
    YamlNode value = map.Find(key);
    if (!value.IsDefined()) return;
    const std::string field = StrCat(where, ".", key);
    std::optional<std::string_view> text = check.Text(value, field);
    if (!text) return;
    absl::StatusOr<Duration> parsed = ParseDuration(*text);
    if (!parsed.ok()) {
      check.Error(value, field, std::string(parsed.status().message()));
    } else if (!zero_ok && parsed->count() <= 0) {
      check.Error(value, field, StrCat("must be more than 0, got '", *text, "'"));
    } else {
      out = *parsed;
    }
  };
  S3Timing& timing = tier.s3_timing;
  if (YamlNode timeout = node.Find("timeout"); timeout.IsDefined()) {
    const std::string where = path + ".timeout";
    if (!timeout.IsMap()) {
      check.Error(timeout, where,
                  StrCat("expected a map (stall, min_rate), got ", timeout.Describe()));
    } else {
      check.CheckKeys(timeout, where, kTimeoutKeys);
      duration(timeout, where, "stall", timing.stall, false);
      if (YamlNode rate = timeout.Find("min_rate"); rate.IsDefined()) {
        if (std::optional<std::string_view> t = check.Text(rate, where + ".min_rate")) {
          absl::StatusOr<uint64_t> bytes = ParseSize(*t);
          if (!bytes.ok()) {
            check.Error(rate, where + ".min_rate", std::string(bytes.status().message()));
          } else if (*bytes == 0) {
            check.Error(rate, where + ".min_rate",
                        "bytes per second must be more than 0 (like 1MB)");
          } else {
            timing.min_rate = *bytes;
          }
        }
      }
    }
  }
  if (YamlNode retry = node.Find("retry"); retry.IsDefined()) {
    const std::string where = path + ".retry";
    if (!retry.IsMap()) {
      check.Error(retry, where,
                  StrCat("expected a map (backoff, max_backoff, budget), got ", retry.Describe()));
    } else {
      check.CheckKeys(retry, where, kRetryKeys);
      duration(retry, where, "backoff", timing.backoff, true);
      duration(retry, where, "max_backoff", timing.max_backoff, true);
      duration(retry, where, "budget", timing.budget, true);
      if (timing.max_backoff < timing.backoff) {
        check.Error(retry, where,
                    StrCat("max_backoff (", FormatDuration(timing.max_backoff),
                           ") is less than backoff (", FormatDuration(timing.backoff), ")"));
      }
    }
  }
}

void ParseTier(Checker& check, const YamlNode& key, const YamlNode& node, const fs::path& base,
               TierSet& set) {
  TierConfig tier;
  tier.name = std::string(key.Scalar());
  tier.line = key.line();
  const std::string path = StrCat("tiers.", tier.name);
  if (!ValidName(tier.name)) {
    check.Error(key, path,
                "a tier name is 1-63 characters: lower-case letters, digits, '-' and '_', "
                "starting with a letter");
  }
  if (!node.IsMap()) {
    check.Error(node, path, StrCat("expected a map, got ", node.Describe()));
    return;
  }
  check.CheckKeys(node, path, kTierKeys);
  auto text = [&](std::string_view field, std::string& out) {
    YamlNode value = node.Find(field);
    if (!value.IsDefined()) return;
    if (std::optional<std::string_view> t = check.Text(value, StrCat(path, ".", field))) {
      out = std::string(*t);
    }
  };
  YamlNode adapter = node.Find("adapter");
  if (!adapter.IsDefined()) {
    check.Error(node, path, "missing 'adapter' (posix or s3)");
  } else if (std::optional<size_t> i = check.OneOf(adapter, path + ".adapter", kAdapters)) {
    tier.adapter = kAdapters[*i];
  }
  text("root", tier.root);
  text("endpoint", tier.endpoint);
  text("bucket", tier.bucket);
  text("region", tier.region);
  text("prefix", tier.prefix);
  text("access_key_env", tier.access_key_env);
  text("secret_key_env", tier.secret_key_env);
  if (YamlNode style = node.Find("path_style"); style.IsDefined()) {
    std::optional<size_t> i = check.OneOf(style, path + ".path_style", {"true", "false"});
    if (i) tier.path_style = *i == 0;
  }
  if (YamlNode scope = node.Find("scope"); scope.IsDefined()) {
    if (std::optional<size_t> i = check.OneOf(scope, path + ".scope", kScopes)) {
      tier.scope = static_cast<Scope>(*i);
    }
  }
  if (YamlNode durability = node.Find("durability"); durability.IsDefined()) {
    if (std::optional<size_t> i = check.OneOf(durability, path + ".durability", kDurabilities)) {
      tier.durability = static_cast<Durability>(*i);
    }
  }
  if (YamlNode capacity = node.Find("capacity"); capacity.IsDefined()) {
    if (std::optional<std::string_view> t = check.Text(capacity, path + ".capacity")) {
      absl::StatusOr<uint64_t> bytes = ParseSize(*t);
      if (!bytes.ok()) {
        check.Error(capacity, path + ".capacity", std::string(bytes.status().message()));
      } else if (*bytes == 0) {
        check.Error(capacity, path + ".capacity", "a tier's capacity must be more than 0 bytes");
      } else {
        tier.capacity = *bytes;
      }
    }
  }
  if (YamlNode profile = node.Find("profile"); profile.IsDefined()) {
    ParseProfile(check, profile, path + ".profile", tier);
  }

  // What each adapter needs, and nothing it cannot use.
  auto require = [&](std::string_view field, const std::string& value, std::string_view what) {
    if (value.empty()) check.Error(node, path, StrCat("missing '", field, "': ", what));
  };
  auto forbid = [&](std::string_view field) {
    if (YamlNode value = node.Find(field); value.IsDefined()) {
      check.Error(value, StrCat(path, ".", field),
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
      fs::path root(tier.root);
      tier.root = (root.is_absolute() ? root : base / root).lexically_normal().string();
    }
  } else if (tier.adapter == "s3") {
    require("endpoint", tier.endpoint, "the server, as http://host:port or https://host");
    require("bucket", tier.bucket, "the bucket that holds this tier's artifacts");
    require("access_key_env", tier.access_key_env,
            "the environment variable holding the access key id");
    require("secret_key_env", tier.secret_key_env,
            "the environment variable holding the secret key");
    forbid("root");
    ParseS3Timing(check, node, path, tier);
    if (!tier.endpoint.empty() && tier.endpoint.rfind("http://", 0) != 0 &&
        tier.endpoint.rfind("https://", 0) != 0) {
      check.Error(node.Find("endpoint"), path + ".endpoint",
                  StrCat("expected http://host:port or https://host, got '", tier.endpoint, "'"));
    }
    for (auto [field, value] :
         {std::pair<std::string_view, const std::string*>{"access_key_env", &tier.access_key_env},
          {"secret_key_env", &tier.secret_key_env}}) {
      if (!value->empty() && !ValidEnvName(*value)) {
        check.Error(
            node.Find(field), StrCat(path, ".", field),
            StrCat("expected the name of an environment variable (like ",
                   field == "access_key_env" ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                   "), got '", *value, "': put the secret itself in the environment"));
      }
    }
  }
  set.tiers.push_back(std::move(tier));
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
  Checker check(file);
  TierSet set;
  set.file = file;
  absl::StatusOr<std::unique_ptr<YamlDocument>> document = YamlDocument::Parse(text);
  if (!document.ok()) {
    // "LINE:COL: message" from the parser.
    std::string message(document.status().message());
    Diagnostic diagnostic{file, 0, 0, "", message};
    int line = 0, column = 0, consumed = 0;
    if (std::sscanf(message.c_str(), "%d:%d: %n", &line, &column, &consumed) == 2) {
      diagnostic = Diagnostic{file, line, column, "", message.substr(consumed)};
    }
    check.diagnostics().push_back(diagnostic);
  } else {
    const fs::path base = fs::absolute(fs::path(file)).parent_path();
    YamlNode root = (*document)->root();
    if (!root.IsMap()) {
      check.Error(root, "", StrCat("expected a map with 'tiers', got ", root.Describe()));
    } else {
      check.CheckKeys(root, "", {"tiers"});
      YamlNode tiers = root.Find("tiers");
      if (!tiers.IsDefined()) {
        check.Error(root, "", "missing 'tiers': a map from tier name to its settings");
      } else if (!tiers.IsMap() || tiers.size() == 0) {
        check.Error(tiers, "tiers",
                    StrCat("expected a map from tier name to its settings, got ",
                           tiers.IsMap() ? "an empty map" : tiers.Describe()));
      } else {
        // Linear in the number of tiers: a hash set finds duplicates.
        std::unordered_set<std::string_view> seen;
        for (size_t i = 0; i < tiers.size(); ++i) {
          YamlNode::Entry entry = tiers.entry(i);
          if (!seen.insert(entry.key.Scalar()).second) {
            check.Error(entry.key, StrCat("tiers.", entry.key.Scalar()), "duplicate key");
            continue;
          }
          ParseTier(check, entry.key, entry.value, base, set);
        }
      }
    }
  }
  SortDiagnostics(check.diagnostics());
  if (diagnostics != nullptr) *diagnostics = check.diagnostics();
  if (!check.diagnostics().empty()) return DiagnosticsToStatus(check.diagnostics());
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
