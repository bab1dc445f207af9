// Row reading shared by the store layer's read queries (run_queries.cc,
// api_queries.cc): step a statement to its end and always reset it, so no
// read snapshot outlives the call (WAL readers see later commits only once
// their statements are reset), and read a state column loudly. Private to
// scheduler/.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/strings.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler::internal {

// Steps `statement` to its end, calling `row` on each row. The statement is
// reset afterwards in every case, so it holds no read snapshot.
template <typename Row>
absl::Status ForEachRow(Statement& statement, Row&& row) {
  for (;;) {
    absl::StatusOr<bool> more = statement.Step();
    if (!more.ok() || !*more) {
      statement.Reset();
      return more.status();
    }
    // A row callback may return a Status: an error stops the walk.
    if constexpr (std::is_same_v<decltype(row(statement)), absl::Status>) {
      if (absl::Status status = row(statement); !status.ok()) {
        statement.Reset();
        return status;
      }
    } else {
      row(statement);
    }
  }
}

inline std::optional<std::string> OptionalText(const Statement& statement, int column) {
  if (statement.IsNull(column)) return std::nullopt;
  return statement.Text(column);
}

// A state column's word as its enum (`parse` is one of store.h's
// Parse*State); DataLoss naming the word and `where` it was read, so a store
// written by a newer tierflow (or edited by hand) is reported, never read as
// some default.
template <typename Parse>
auto StateOf(Parse parse, const std::string& word, std::string_view where)
    -> decltype(parse(word)) {
  auto state = parse(word);
  if (!state.ok()) {
    return absl::DataLossError(StrCat(where, ": ", state.status().message()));
  }
  return state;
}

}  // namespace tierflow::scheduler::internal
