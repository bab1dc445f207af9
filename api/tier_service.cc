#include "api/tier_service.h"

#include <sys/statvfs.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>

#include "absl/strings/str_join.h"
#include "api/text_table.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "common/units.h"
#include "scheduler/api_queries.h"
#include "scheduler/store.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/tier_factory.h"

namespace tierflow::api {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
namespace {

std::string Number(double value, int decimals) {
  char text[64];
  snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string ProfileText(const storage::TierProfile& p) {
  return StrCat("read ", Number(p.seq_read_mb_s, 0), " MB/s, write ", Number(p.seq_write_mb_s, 0),
                " MB/s, ", Number(p.rand_read_iops, 0), " IOPS, ", Number(p.latency_us, 0), " µs");
}

Json ProfileJson(const storage::TierProfile& p) {
  return Json{{"seq_read_mb_s", p.seq_read_mb_s},
              {"seq_write_mb_s", p.seq_write_mb_s},
              {"rand_read_iops", p.rand_read_iops},
              {"latency_us", p.latency_us}};
}

Json OptionalBytes(const std::optional<uint64_t>& bytes) {
  return bytes ? Json(*bytes) : Json(nullptr);
}

}  // namespace

absl::StatusOr<storage::TierSet> LoadTiers(const std::string& tiers_file,
                                           const std::string& db_path) {
  if (!tiers_file.empty()) return storage::LoadTierFile(tiers_file);
  std::string state = fs::path(db_path).parent_path().string();
  return storage::DefaultTiers(state.empty() ? "." : state);
}

absl::StatusOr<std::vector<TierView>> ListTiers(const storage::TierSet& tiers,
                                                const std::string& db_path) {
  std::vector<TierView> views;
  std::map<std::string, scheduler::TierProfileRow> newest;
  absl::StatusOr<std::unique_ptr<scheduler::Database>> opened =
      fs::exists(db_path) ? scheduler::OpenStoreReadOnly(db_path, /*oldest=*/3)
                          : absl::NotFoundError("no database");
  // No database, or an empty one (a first run killed while an older
  // tierflow created it): no measured profiles yet.
  if (!opened.ok() && !absl::IsNotFound(opened.status())) return opened.status();
  if (opened.ok()) {
    // Measured profiles are in every store since schema 3.
    TF_ASSIGN_OR_RETURN(newest, scheduler::NewestTierProfiles(**opened));
  }
  views.reserve(tiers.tiers.size());
  for (const storage::TierConfig& tier : tiers.tiers) {
    TierView view;
    view.config = tier;
    struct statvfs fs_info {};
    if (tier.adapter == "posix" && statvfs(tier.root.c_str(), &fs_info) == 0) {
      view.fs_total_bytes = static_cast<uint64_t>(fs_info.f_blocks) * fs_info.f_frsize;
      view.fs_free_bytes = static_cast<uint64_t>(fs_info.f_bavail) * fs_info.f_frsize;
    }
    if (auto found = newest.find(tier.name); found != newest.end()) {
      const scheduler::TierProfileRow& row = found->second;
      MeasuredProfile measured;
      measured.profile = row.profile;
      measured.create_us = row.create_us;
      measured.stat_us = row.stat_us;
      measured.measured_at_ms = row.measured_at_ms;
      measured.location = row.location;
      view.measured = measured;
    }
    views.push_back(std::move(view));
  }
  return views;
}

void RenderTiersText(const std::vector<TierView>& tiers, std::ostream& out) {
  TextTable table(
      {"TIER", "ADAPTER", "SCOPE", "DURABILITY", "CAPACITY", "FREE", "PROFILE", "LOCATION"});
  for (const TierView& tier : tiers) {
    const storage::TierConfig& c = tier.config;
    std::string profile = "not measured (tierflow tiers probe)";
    if (tier.measured) {
      profile = ProfileText(tier.measured->profile);
      if (tier.measured->location != c.Location()) profile += " (measured elsewhere)";
    } else if (c.profile) {
      profile = ProfileText(*c.profile) + " (declared)";
    }
    std::string capacity = c.capacity            ? FormatSize(*c.capacity)
                           : tier.fs_total_bytes ? FormatSize(*tier.fs_total_bytes)
                                                 : "-";
    table.Add({c.name, c.adapter, std::string(storage::ScopeName(c.scope)),
               std::string(DurabilityName(c.durability)), capacity,
               tier.fs_free_bytes ? FormatSize(*tier.fs_free_bytes) : "-", profile, c.Location()});
  }
  table.Write(out);
}

void RenderTiersJson(const std::vector<TierView>& tiers, std::ostream& out) {
  Json list = Json::array();
  for (const TierView& tier : tiers) {
    const storage::TierConfig& c = tier.config;
    Json measured = nullptr;
    if (tier.measured) {
      measured = ProfileJson(tier.measured->profile);
      measured["create_us"] = tier.measured->create_us;
      measured["stat_us"] = tier.measured->stat_us;
      measured["measured_at_ms"] = tier.measured->measured_at_ms;
      measured["location"] = tier.measured->location;
    }
    list.push_back(Json{{"name", c.name},
                        {"adapter", c.adapter},
                        {"location", c.Location()},
                        {"scope", storage::ScopeName(c.scope)},
                        {"durability", DurabilityName(c.durability)},
                        {"capacity_bytes", OptionalBytes(c.capacity)},
                        {"fs_total_bytes", OptionalBytes(tier.fs_total_bytes)},
                        {"fs_free_bytes", OptionalBytes(tier.fs_free_bytes)},
                        {"declared_profile", c.profile ? ProfileJson(*c.profile) : Json(nullptr)},
                        {"measured_profile", measured}});
  }
  out << list.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

absl::Status ProbeTiers(const storage::TierSet& tiers, const std::vector<std::string>& names,
                        std::chrono::milliseconds budget, const std::string& db_path,
                        std::ostream& out) {
  std::vector<const storage::TierConfig*> chosen;
  std::vector<std::string> known;
  for (const storage::TierConfig& tier : tiers.tiers) known.push_back(tier.name);
  for (const std::string& name : names) {
    const storage::TierConfig* tier = tiers.Find(name);
    if (tier == nullptr) {
      return absl::NotFoundError(StrCat("no tier '", name, "'", DidYouMean(name, known),
                                        "; the tiers are ", absl::StrJoin(known, ", ")));
    }
    chosen.push_back(tier);
  }
  if (names.empty()) {
    for (const storage::TierConfig& tier : tiers.tiers) chosen.push_back(&tier);
  }
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, scheduler::OpenStore(db_path));
  for (const storage::TierConfig* tier : chosen) {
    TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::Adapter> adapter, storage::OpenTier(*tier));
    storage::ProbeOptions options;
    options.budget = budget;
    if (tier->adapter == "posix") {
      options.drop_cache = [root = tier->root](const std::string& key) {
        storage::DropPosixCache(root, key);
      };
    }
    absl::StatusOr<storage::ProbeResult> result = storage::ProbeTier(*adapter, options);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          StrCat("probing tier ", tier->name, ": ", result.status().message()));
    }
    const storage::TierProfile& p = result->profile;
    scheduler::TierProfileRow row;
    row.tier = tier->name;
    row.location = tier->Location();
    row.measured_at_ms = WallClockMs();
    row.profile = p;
    row.create_us = result->create_us;
    row.stat_us = result->stat_us;
    row.bytes_tested = static_cast<int64_t>(result->bytes_written);
    row.elapsed_ms = static_cast<int64_t>(result->elapsed.count());
    TF_RETURN_IF_ERROR(scheduler::RecordTierProfile(*db, row));
    out << tier->name << ": " << ProfileText(p) << "; create " << Number(result->create_us, 0)
        << " µs, stat " << Number(result->stat_us, 1) << " µs ("
        << FormatSize(result->bytes_written) << " in " << FormatDuration(result->elapsed) << ")"
        << std::endl;
  }
  return absl::OkStatus();
}

std::vector<scheduler::PlacementTier> PlacementTiers(const std::vector<TierView>& tiers) {
  std::vector<scheduler::PlacementTier> result;
  for (const TierView& view : tiers) {
    scheduler::PlacementTier tier;
    tier.config = view.config;
    if (view.measured) {
      tier.profile = view.measured->profile;
      tier.profile_source = "measured";
    } else if (view.config.profile) {
      tier.profile = *view.config.profile;
      tier.profile_source = "declared";
    } else {
      tier.profile = scheduler::AssumedProfile(view.config);
      tier.profile_source = "assumed";
    }
    tier.capacity = view.config.capacity.value_or(view.fs_free_bytes.value_or(0));
    result.push_back(std::move(tier));
  }
  return result;
}

absl::StatusOr<std::vector<scheduler::PlacementTier>> LoadPlacementTiers(
    const std::string& tiers_file, const std::string& db_path) {
  TF_ASSIGN_OR_RETURN(storage::TierSet tiers, LoadTiers(tiers_file, db_path));
  TF_ASSIGN_OR_RETURN(std::vector<TierView> views, ListTiers(tiers, db_path));
  return PlacementTiers(views);
}

absl::StatusOr<scheduler::Placement> PlacePlan(const scheduler::Plan& plan,
                                               const std::string& tiers_file,
                                               const std::string& db_path) {
  TF_ASSIGN_OR_RETURN(std::vector<scheduler::PlacementTier> tiers,
                      LoadPlacementTiers(tiers_file, db_path));
  return scheduler::PlaceArtifacts(plan, tiers);
}

void RenderPlacementText(const scheduler::Placement& placement, std::ostream& out) {
  out << "\nplacement\n";
  for (const scheduler::OutputPlacement& output : placement.outputs) {
    out << "  " << output.task << "." << output.output << " -> home " << output.home;
    if (output.write_tier != output.home) out << " (written on " << output.write_tier << ")";
    out << ": " << output.reason << '\n';
    for (const scheduler::InputPlacement& input : placement.inputs) {
      if (input.producer_task != output.task || input.output != output.output) continue;
      out << "    " << input.task << " reads it (" << input.input << ") from " << input.working
          << ": " << input.reason << '\n';
    }
  }
}

std::string PlacementJsonField(const scheduler::Placement& placement) {
  Json outputs = Json::array();
  for (const scheduler::OutputPlacement& o : placement.outputs) {
    outputs.push_back(Json{{"task", o.task},
                           {"output", o.output},
                           {"bytes", o.bytes},
                           {"bytes_assumed", o.bytes_assumed},
                           {"needs", DurabilityName(o.needs)},
                           {"home", o.home},
                           {"write_tier", o.write_tier},
                           {"write_seconds", o.write_seconds},
                           {"write_back_seconds", o.write_back_seconds},
                           {"reason", o.reason}});
  }
  Json inputs = Json::array();
  for (const scheduler::InputPlacement& i : placement.inputs) {
    inputs.push_back(Json{{"task", i.task},
                          {"input", i.input},
                          {"producer_task", i.producer_task},
                          {"output", i.output},
                          {"home", i.home},
                          {"source", i.source},
                          {"working", i.working},
                          {"read_seconds", i.read_seconds},
                          {"copy_seconds", i.copy_seconds},
                          {"home_read_seconds", i.home_read_seconds},
                          {"reason", i.reason}});
  }
  return StrCat(",\"placement\":", Json{{"outputs", outputs}, {"inputs", inputs}}.dump(
                                       -1, ' ', false, Json::error_handler_t::replace));
}

absl::Status WriteTierList(const std::string& tiers_file, const std::string& db_path,
                           const std::string& format, std::ostream& out) {
  TF_ASSIGN_OR_RETURN(storage::TierSet tiers, LoadTiers(tiers_file, db_path));
  TF_ASSIGN_OR_RETURN(std::vector<TierView> views, ListTiers(tiers, db_path));
  if (format == "json") {
    RenderTiersJson(views, out);
  } else {
    RenderTiersText(views, out);
  }
  return absl::OkStatus();
}

}  // namespace tierflow::api
