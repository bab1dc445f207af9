// The `tierflow` commands, one function each, separate from argument
// parsing (main.cc) so each reads as: call the api, print, pick an exit code.
// They talk only to api/.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "api/explain_service.h"

namespace tierflow::cli {

// Exit codes every command shares.
enum ExitCode : int {
  kExitOk = 0,
  kExitInvalid = 1,  // bad input file or param value, unreadable file
  kExitUsage = 2,    // bad command line
};

// Checks one `--param` argument; returns "" when it is NAME=VALUE, else
// the problem, naming the argument.
std::string CheckParamArgument(const std::string& argument);

// `--param` arguments (already checked) as a map; a repeated name keeps its
// last value, as later flags override earlier ones.
std::map<std::string, std::string> ParseParams(const std::vector<std::string>& arguments);

struct ValidateOptions {
  std::vector<std::string> files;
  std::vector<std::string> params;  // NAME=VALUE, checked by CheckParamArgument
};

struct PlanOptions {
  std::string file;
  std::vector<std::string> params;  // NAME=VALUE, checked by CheckParamArgument
  std::string output = "text";      // "text" or "json"
  std::string tiers_file;           // set: add the placement on these tiers
  std::string db;                   // measured tier profiles; "" = the default
  bool explain = false;             // --explain: run or reuse per task, and why
  std::vector<std::string> rerun;   // --rerun STAGE (with --explain)
  bool rerun_downstream = false;
};

// Prints "FILE: ok (S stages, T tasks)" for each valid file to `out` and
// every diagnostic to `err`; kExitOk when all files are valid.
int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err);

// kExitOk once `out` is flushed; kExitInvalid, saying so on `err`, when it
// could not be written (a full disk, a closed pipe): that must not look like
// success to a script.
int CheckWritten(std::ostream& out, std::ostream& err);

// Prints the plan to `out` as text or JSON, or the diagnostics to `err`.
int RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err);

// `plan --explain` and `run --dry-run`: what a run of the file would do,
// task by task, in `output` ("text" or "json"); the store is only read.
// kExitInvalid for an invalid file or an unknown --rerun stage.
int RunExplain(const api::ExplainRequest& request, const std::string& output, std::ostream& out,
               std::ostream& err);

}  // namespace tierflow::cli
