// `tierflow gc`: deletes old runs' data on every tier (scheduler/gc.h
// decides what). Exit codes as in commands.h: 0 done, 1 for a bad value or
// a failed delete (the next gc tries it again), 2 for a usage error.
#pragma once

#include <iosfwd>
#include <string>

namespace tierflow::cli {

struct GcCommandOptions {
  std::string db;          // "": $TIERFLOW_DB or .tierflow/tierflow.db
  int keep_last = -1;      // -1: not given
  std::string older_than;  // "": not given; else 7d, 12h, 30m, 45s
  bool dry_run = false;
  std::string output = "text";
};

int RunGc(const GcCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
