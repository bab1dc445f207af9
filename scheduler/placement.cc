#include "scheduler/placement.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"

namespace tierflow::scheduler {
namespace {

std::string Seconds(double seconds) {
  char text[32];
  if (seconds < 0.0001) {
    snprintf(text, sizeof text, "%.0f µs", seconds * 1e6);
  } else if (seconds < 0.01) {
    snprintf(text, sizeof text, "%.1f ms", seconds * 1000);
  } else if (seconds < 100) {
    snprintf(text, sizeof text, "%.2f s", seconds);
  } else {
    snprintf(text, sizeof text, "%.0f s", seconds);
  }
  return text;
}

double Bandwidth(double mb_s) { return std::max(mb_s, 0.001) * 1e6; }

// Writing `bytes` in `block`-sized writes with `pattern`.
double WriteSeconds(const storage::TierProfile& p, uint64_t bytes, dag::AccessPattern pattern,
                    uint64_t block) {
  double seconds = static_cast<double>(bytes) / Bandwidth(p.seq_write_mb_s);
  if (pattern == dag::AccessPattern::kRandom && block > 0) {
    seconds += static_cast<double>(bytes / block) * p.latency_us / 1e6;
  }
  return seconds + p.latency_us / 1e6;
}

// Reading `bytes` `passes` times in `block`-sized reads with `pattern`.
double ReadSeconds(const storage::TierProfile& p, uint64_t bytes, dag::AccessPattern pattern,
                   uint64_t block, uint32_t passes) {
  double once = static_cast<double>(bytes) / Bandwidth(p.seq_read_mb_s);
  if (pattern == dag::AccessPattern::kRandom) {
    const double ops = static_cast<double>(bytes / std::max<uint64_t>(block, 4096));
    once = std::max(once, ops / std::max(p.rand_read_iops, 1.0));
  }
  return std::max<uint32_t>(passes, 1) * once + p.latency_us / 1e6;
}

std::string ProfileNote(const PlacementTier& tier) {
  return tier.profile_source == "measured" ? "" : StrCat(" (", tier.profile_source, " profile)");
}

double CopySeconds(const PlacementTier& from, const PlacementTier& to, uint64_t bytes) {
  return static_cast<double>(bytes) /
             std::min(Bandwidth(from.profile.seq_read_mb_s), Bandwidth(to.profile.seq_write_mb_s)) +
         (from.profile.latency_us + to.profile.latency_us) / 1e6;
}

bool NodeOnly(const PlacementTier& tier) { return tier.config.scope == storage::Scope::kNode; }

bool Fits(const PlacementTier& tier, uint64_t bytes) {
  return tier.capacity == 0 || bytes <= tier.capacity;
}

// Where the producer writes `out`, whose home is `home`: tasks write files,
// so a posix tier; the home itself unless another posix tier writes it at
// least a tenth faster (then the home gets it by a write-back in the
// background). A write tier holds the only copy until the write-back ends,
// so it must survive a task's crash (node durability) unless the output
// needs no more than volatile; an archive takes only its own outputs.
absl::Status ChooseWriteTier(const std::vector<PlacementTier>& tiers, const PlacementTier& home,
                             const PlannedTask& task, const std::string& what,
                             const PlacementOptions& options, OutputPlacement& out) {
  const Durability floor = std::min(out.needs, Durability::kNode);
  const PlacementTier* write = nullptr;
  double write_seconds = std::numeric_limits<double>::infinity();
  for (const PlacementTier& tier : tiers) {
    if (tier.config.adapter != "posix" || tier.config.durability < floor ||
        (tier.config.durability == Durability::kArchive && &tier != &home) ||
        !Fits(tier, out.bytes) || (options.node_tiers_hold_working_copies_only && NodeOnly(tier))) {
      continue;
    }
    double seconds = WriteSeconds(tier.profile, out.bytes, task.io.write, task.io.block_size);
    if (seconds < write_seconds) {
      write_seconds = seconds;
      write = &tier;
    }
  }
  if (home.config.adapter == "posix" &&
      (write == nullptr || !(write_seconds < out.write_seconds * 0.9))) {
    write = &home;
  }
  if (write == nullptr) {
    return absl::FailedPreconditionError(
        StrCat(what, ": its home ", home.config.name, " is an object store, and no posix tier (",
               DurabilityName(floor), " or better, room for ", FormatSize(out.bytes),
               ") can take the task's writes first"));
  }
  out.write_tier = write->config.name;
  if (write == &home) return absl::OkStatus();
  out.write_back_seconds = CopySeconds(*write, home, out.bytes);
  out.reason = StrCat(out.reason, "; written on ", write->config.name, " ≈ ",
                      Seconds(write_seconds), ProfileNote(*write), ", then written back to ",
                      home.config.name, " in the background ≈ ", Seconds(out.write_back_seconds));
  out.write_seconds = write_seconds;
  return absl::OkStatus();
}

}  // namespace

storage::TierProfile AssumedProfile(const storage::TierConfig& tier) {
  if (tier.adapter == "s3") return {200, 150, 200, 20000};  // an object store over the network
  if (tier.durability == Durability::kVolatile) return {5000, 3000, 200000, 5};  // RAM (tmpfs)
  if (tier.scope == storage::Scope::kCluster) return {1000, 800, 5000, 500};     // a shared FS
  return {1500, 1000, 20000, 80};  // a local NVMe disk
}

absl::StatusOr<Placement> PlaceArtifacts(const Plan& plan, const std::vector<PlacementTier>& tiers,
                                         const PlacementOptions& options) {
  const bool cluster = options.node_tiers_hold_working_copies_only;
  Placement placement;
  std::vector<std::string> names;
  for (const PlacementTier& tier : tiers) names.push_back(tier.config.name);
  auto find = [&](std::string_view name) -> const PlacementTier* {
    for (const PlacementTier& tier : tiers) {
      if (tier.config.name == name) return &tier;
    }
    return nullptr;
  };
  auto fits = Fits;
  // stage name -> (output name -> home), for the consumers.
  std::map<std::string, std::map<std::string, const OutputPlacement*>> homes;
  std::map<std::string, const PlannedTask*> first_task;

  for (const PlanLayer& layer : plan.layers) {
    for (const PlannedTask& task : layer.tasks) {
      first_task.emplace(task.stage, &task);
      for (const PlannedOutput& output : task.outputs) {
        OutputPlacement out;
        out.task = task.id;
        out.output = output.name;
        out.bytes_assumed = output.size_hint == 0;
        out.bytes = out.bytes_assumed ? kAssumedBytes : output.size_hint;
        out.needs = output.durability;
        const std::string what = StrCat(task.id, ".", output.name);
        const PlacementTier* best = nullptr;
        std::vector<std::string> ruled_out;
        if (!task.tier.empty()) {
          best = find(task.tier);
          if (best == nullptr) {
            return absl::FailedPreconditionError(
                StrCat(what, ": stage ", task.stage, " pins tier '", task.tier,
                       "', which is not one of the tiers (", absl::StrJoin(names, ", "), ")"));
          }
          if (best->config.durability < out.needs) {
            return absl::FailedPreconditionError(
                StrCat(what, " needs a ", DurabilityName(out.needs), " home, but its pinned tier ",
                       task.tier, " is only ", DurabilityName(best->config.durability)));
          }
          if (cluster && NodeOnly(*best)) {
            return absl::FailedPreconditionError(
                StrCat(what, ": stage ", task.stage, " pins tier '", task.tier,
                       "', a node tier: in cluster mode each worker has its own, so it holds "
                       "working copies only, never an output's home"));
          }
          out.write_seconds =
              WriteSeconds(best->profile, out.bytes, task.io.write, task.io.block_size);
          out.reason = StrCat("pinned by the stage's tier:; write ", FormatSize(out.bytes), " ≈ ",
                              Seconds(out.write_seconds), ProfileNote(*best));
        } else {
          double best_seconds = std::numeric_limits<double>::infinity();
          for (const PlacementTier& tier : tiers) {
            if (cluster && NodeOnly(tier)) {
              ruled_out.push_back(
                  StrCat(tier.config.name, " is a node tier (working copies only)"));
              continue;
            }
            if (tier.config.durability < out.needs) {
              ruled_out.push_back(
                  StrCat(tier.config.name, " is ", DurabilityName(tier.config.durability)));
              continue;
            }
            // Write-once tiers keep what must be kept for good, nothing else.
            if (tier.config.durability == Durability::kArchive &&
                out.needs != Durability::kArchive) {
              ruled_out.push_back(StrCat(tier.config.name, " is an archive"));
              continue;
            }
            if (!fits(tier, out.bytes)) {
              ruled_out.push_back(
                  StrCat(tier.config.name, " holds only ", FormatSize(tier.capacity)));
              continue;
            }
            double seconds =
                WriteSeconds(tier.profile, out.bytes, task.io.write, task.io.block_size);
            if (seconds < best_seconds) {
              best_seconds = seconds;
              best = &tier;
            }
          }
          if (best == nullptr) {
            return absl::FailedPreconditionError(
                StrCat(what, " needs a ", DurabilityName(out.needs), " home for ",
                       FormatSize(out.bytes), " and no tier fits: ",
                       ruled_out.empty() ? "there are no tiers" : absl::StrJoin(ruled_out, "; ")));
          }
          out.write_seconds = best_seconds;
          out.reason = StrCat(
              "needs ", DurabilityName(out.needs), "; write ", FormatSize(out.bytes),
              out.bytes_assumed ? " (size assumed)" : "", " ≈ ", Seconds(best_seconds), " at ",
              static_cast<int64_t>(best->profile.seq_write_mb_s), " MB/s", ProfileNote(*best),
              ruled_out.empty() ? "" : StrCat("; ", absl::StrJoin(ruled_out, ", ")));
        }
        out.home = best->config.name;
        TF_RETURN_IF_ERROR(ChooseWriteTier(tiers, *best, task, what, options, out));
        placement.outputs.push_back(std::move(out));
      }
    }
  }
  for (const OutputPlacement& out : placement.outputs) {
    const std::string stage = out.task.substr(0, out.task.find('['));
    homes[stage][out.output] = &out;  // a foreach stage: its items share one placement
  }

  for (const PlanLayer& layer : plan.layers) {
    for (const PlannedTask& task : layer.tasks) {
      for (const PlannedInput& input : task.inputs) {
        auto stage = homes.find(input.stage);
        if (stage == homes.end()) continue;
        auto produced = stage->second.find(input.output);
        if (produced == stage->second.end()) continue;
        const OutputPlacement& out = *produced->second;
        // A gather reads every item of a foreach producer.
        const PlannedTask* producer = first_task[input.stage];
        uint64_t bytes = out.bytes;
        // (An item-wise input reads one item's.)
        if (producer != nullptr && producer->item && !input.each) {
          uint64_t items = 0;
          for (const OutputPlacement& o : placement.outputs) {
            if (o.output == input.output && o.task.substr(0, o.task.find('[')) == input.stage) {
              ++items;
            }
          }
          bytes = out.bytes * std::max<uint64_t>(items, 1);
        }
        const PlacementTier* source = find(out.write_tier);
        InputPlacement in;
        in.task = task.id;
        in.input = input.name;
        in.producer_task = out.task;
        in.output = input.output;
        in.home = out.home;
        in.source = out.write_tier;
        in.home_read_seconds = ReadSeconds(source->profile, bytes, task.io.read, task.io.block_size,
                                           task.io.read_passes);
        const PlacementTier* best = source;
        double best_total = in.home_read_seconds;
        double best_copy = 0;
        for (const PlacementTier& tier : tiers) {
          // Tasks read files: working copies live on posix tiers.
          if (&tier == source || tier.config.adapter != "posix" || !fits(tier, bytes)) continue;
          const double copy = CopySeconds(*source, tier, bytes);
          const double read = ReadSeconds(tier.profile, bytes, task.io.read, task.io.block_size,
                                          task.io.read_passes);
          // A copy is worth making only when it saves a tenth of the reads.
          if (read + copy < best_total * 0.9) {
            best_total = read + copy;
            best = &tier;
            best_copy = copy;
          }
        }
        in.working = best->config.name;
        in.copy_seconds = best_copy;
        in.read_seconds = best_total - best_copy;
        const std::string reads =
            StrCat(dag::AccessPatternName(task.io.read), " reads of ", FormatSize(bytes),
                   task.io.read_passes > 1 ? StrCat(" x", task.io.read_passes, " passes") : "");
        if (best == source) {
          in.reason = StrCat("reads in place: ", reads, " ≈ ", Seconds(in.home_read_seconds),
                             " on ", source->config.name, ProfileNote(*source),
                             "; no copy would save a tenth of that");
        } else {
          in.reason =
              StrCat("copy to ", best->config.name,
                     cluster && NodeOnly(*best) ? " on the worker that runs it, before it starts"
                                                : " ahead of need",
                     " (", Seconds(best_copy), "), then ", reads, " ≈ ", Seconds(in.read_seconds),
                     ProfileNote(*best), ", vs ", Seconds(in.home_read_seconds), " on ",
                     source->config.name);
        }
        placement.inputs.push_back(std::move(in));
      }
    }
  }
  return placement;
}

absl::StatusOr<std::vector<CheckpointPlacement>> PlaceCheckpoints(
    const Plan& plan, const std::vector<PlacementTier>& tiers, const PlacementOptions& options) {
  const bool cluster = options.node_tiers_hold_working_copies_only;
  // Node tiers are the workers' own in cluster mode: the server reaches
  // neither them nor what was written on them.
  auto on_workers = [&](const PlacementTier& tier) { return cluster && NodeOnly(tier); };
  auto is_posix = [](const PlacementTier& tier) { return tier.config.adapter == "posix"; };
  auto speed = [](const PlacementTier& tier) {
    return StrCat(static_cast<int64_t>(tier.profile.seq_write_mb_s), " MB/s", ProfileNote(tier));
  };
  // The first of the fastest writers among `eligible`, faster than `floor`.
  auto fastest = [&](auto eligible, double floor) -> const PlacementTier* {
    const PlacementTier* best = nullptr;
    for (const PlacementTier& tier : tiers) {
      if (eligible(tier) && tier.profile.seq_write_mb_s > floor) {
        floor = tier.profile.seq_write_mb_s;
        best = &tier;
      }
    }
    return best;
  };
  const PlacementTier* write =
      fastest([&](const PlacementTier& t) { return is_posix(t) && !on_workers(t); }, -1);
  const PlacementTier* node =
      write == nullptr
          ? nullptr
          : fastest([&](const PlacementTier& t) { return is_posix(t) && on_workers(t); },
                    write->profile.seq_write_mb_s);
  const PlacementTier* durable = fastest(
      [&](const PlacementTier& t) {
        return t.config.durability >= Durability::kDurable &&
               t.config.durability != Durability::kArchive && !on_workers(t);
      },
      -1);

  std::vector<CheckpointPlacement> placements;
  std::set<std::string> seen;
  for (const PlanLayer& layer : plan.layers) {
    for (const PlannedTask& task : layer.tasks) {
      const dag::CheckpointSpec& spec = task.checkpoints;
      if (!spec.enabled || !seen.insert(task.stage).second) continue;
      CheckpointPlacement placed;
      placed.stage = task.stage;
      if (tiers.empty()) {
        placed.reason =
            "no tiers: tasks write checkpoints in the run's folder, and they are not flushed";
        placements.push_back(std::move(placed));
        continue;
      }
      const PlacementTier* flush = durable;
      if (!spec.tier.empty()) {
        flush = nullptr;
        for (const PlacementTier& tier : tiers) {
          if (tier.config.name == spec.tier) flush = &tier;
        }
        if (flush == nullptr || on_workers(*flush)) {
          return absl::FailedPreconditionError(
              StrCat("stage ", task.stage, ": checkpoints.tier '", spec.tier, "' is not ",
                     flush == nullptr ? "one of the run's tiers" : "reachable (a node tier)"));
        }
      }
      const std::string reachable = cluster ? " every worker reaches" : "";
      if (write != nullptr) {
        placed.write_tier = write->config.name;
        placed.reason = StrCat("written on ", write->config.name, ", the fastest posix tier",
                               reachable, " (", speed(*write), ")");
      } else {
        placed.reason = StrCat("no posix tier", reachable,
                               " to write them on: tasks write them in the run's folder");
      }
      if (node != nullptr) {
        placed.node_tier = node->config.name;
        placed.reason = StrCat(placed.reason, "; workers write them first on their node tier ",
                               node->config.name, " (", speed(*node),
                               ") and copy each committed one to ", write->config.name);
      }
      const std::string chosen = spec.tier.empty() ? "the fastest durable tier that allows deletes"
                                                   : "the stage's checkpoints.tier";
      if (flush != nullptr && flush != write) {
        placed.flush_tier = flush->config.name;
        placed.reason =
            StrCat(placed.reason, "; each committed one is flushed to ", flush->config.name, ", ",
                   chosen, spec.tier.empty() ? StrCat(" (", speed(*flush), ")") : "", ", the last ",
                   spec.keep, " kept");
      } else if (flush != nullptr) {
        // Today's behaviour, said plainly: with no flush tier the engine
        // neither records these checkpoints nor prunes them to `keep`.
        placed.reason = StrCat(placed.reason, "; no flush tier: ", flush->config.name, ", ", chosen,
                               ", is the tier they are written on, so they are not "
                               "flushed, not recorded in the store and not pruned to the last ",
                               spec.keep);
      } else {
        placed.reason = StrCat(placed.reason, "; not flushed: no durable tier that allows deletes",
                               cluster ? " outside the workers" : "");
      }
      placements.push_back(std::move(placed));
    }
  }
  return placements;
}

std::string PlacementTiersToJson(const std::vector<PlacementTier>& tiers) {
  nlohmann::json list = nlohmann::json::array();
  for (const PlacementTier& tier : tiers) {
    const storage::TierConfig& c = tier.config;
    const storage::TierProfile& p = tier.profile;
    list.push_back(
        {{"name", c.name},
         {"adapter", c.adapter},
         {"root", c.root},
         {"endpoint", c.endpoint},
         {"bucket", c.bucket},
         {"region", c.region},
         {"prefix", c.prefix},
         {"path_style", c.path_style},
         {"access_key_env", c.access_key_env},
         {"secret_key_env", c.secret_key_env},
         {"scope", storage::ScopeName(c.scope)},
         {"durability", DurabilityName(c.durability)},
         {"profile", {p.seq_read_mb_s, p.seq_write_mb_s, p.rand_read_iops, p.latency_us}},
         {"profile_source", tier.profile_source},
         {"capacity", tier.capacity}});
    if (c.adapter == "s3") {
      const storage::S3Timing& t = c.s3_timing;
      list.back()["s3_timing"] = {t.stall.count(), t.min_rate, t.backoff.count(),
                                  t.max_backoff.count(), t.budget.count()};
    }
  }
  return list.dump();
}

absl::StatusOr<std::vector<PlacementTier>> PlacementTiersFromJson(const std::string& text) {
  const absl::Status unreadable = absl::DataLossError(
      "the tiers this run recorded (runs.tiers_nlohmann::json) are not readable");
  nlohmann::json list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return unreadable;
  std::vector<PlacementTier> tiers;
  try {
    for (const nlohmann::json& entry : list) {
      PlacementTier tier;
      storage::TierConfig& c = tier.config;
      c.name = entry.at("name").get<std::string>();
      c.adapter = entry.at("adapter").get<std::string>();
      c.root = entry.at("root").get<std::string>();
      c.endpoint = entry.at("endpoint").get<std::string>();
      c.bucket = entry.at("bucket").get<std::string>();
      c.region = entry.at("region").get<std::string>();
      c.prefix = entry.at("prefix").get<std::string>();
      c.path_style = entry.at("path_style").get<bool>();
      c.access_key_env = entry.at("access_key_env").get<std::string>();
      c.secret_key_env = entry.at("secret_key_env").get<std::string>();
      c.scope = entry.at("scope").get<std::string>() == storage::ScopeName(storage::Scope::kCluster)
                    ? storage::Scope::kCluster
                    : storage::Scope::kNode;
      std::optional<Durability> durability =
          ParseDurability(entry.at("durability").get<std::string>());
      if (!durability) return unreadable;
      c.durability = *durability;
      const nlohmann::json& p = entry.at("profile");
      tier.profile = {p.at(0).get<double>(), p.at(1).get<double>(), p.at(2).get<double>(),
                      p.at(3).get<double>()};
      tier.profile_source = entry.at("profile_source").get<std::string>();
      tier.capacity = entry.at("capacity").get<uint64_t>();
      if (entry.contains("s3_timing")) {  // since tiers.yaml has timeout and retry
        const nlohmann::json& t = entry.at("s3_timing");
        storage::S3Timing& timing = c.s3_timing;
        timing.stall = std::chrono::milliseconds(t.at(0).get<int64_t>());
        timing.min_rate = t.at(1).get<uint64_t>();
        timing.backoff = std::chrono::milliseconds(t.at(2).get<int64_t>());
        timing.max_backoff = std::chrono::milliseconds(t.at(3).get<int64_t>());
        timing.budget = std::chrono::milliseconds(t.at(4).get<int64_t>());
      }
      tiers.push_back(std::move(tier));
    }
  } catch (const nlohmann::json::exception&) {
    return unreadable;
  }
  return tiers;
}

}  // namespace tierflow::scheduler
