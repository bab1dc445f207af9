// Status helpers shared by every component. Expected failures (bad input,
// I/O, remote errors) travel as absl::Status / absl::StatusOr values that
// carry their context; these two macros keep the call sites short.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TF_CONCAT_INNER_(a, b) a##b
#define TF_CONCAT_(a, b) TF_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define TF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status tf_status_ = (expr);      \
    if (!tf_status_.ok()) return tf_status_; \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status,
// otherwise moves the value into `lhs` (which may be a declaration).
#define TF_ASSIGN_OR_RETURN(lhs, rexpr) \
  TF_ASSIGN_OR_RETURN_IMPL_(TF_CONCAT_(tf_statusor_, __LINE__), lhs, rexpr)

#define TF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(tmp).value()
