// `tierflow tiers list` and `tierflow tiers probe`: the storage tiers of a
// tiers file (or the embedded defaults), their usage and measured profiles.
// Exit codes as in commands.h: 0 done, 1 for a bad tiers file, an unknown
// tier or a failed probe, 2 for a usage error.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace tierflow::cli {

struct TiersOptions {
  std::string tiers_file;          // "": the embedded defaults
  std::string db;                  // "": $TIERFLOW_DB or .tierflow/tierflow.db
  std::string output = "text";     // list: text | json
  std::vector<std::string> names;  // probe: these tiers (all when empty)
  double seconds = 10;             // probe: time per tier
  std::string scheduler;           // list: that server's tiers instead
};

int RunTiersList(const TiersOptions& options, std::ostream& out, std::ostream& err);
int RunTiersProbe(const TiersOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
