#include "common/diagnostic.h"

#include <gtest/gtest.h>

namespace tierflow {
namespace {

TEST(DiagnosticTest, FormatsFileLineColumnPathAndMessage) {
  Diagnostic full{"p.yaml", 7, 5, "stages.clean.kynd", "unknown key 'kynd'"};
  EXPECT_EQ(full.ToString(), "p.yaml:7:5: stages.clean.kynd: unknown key 'kynd'");
  Diagnostic no_position{"--param", 0, 0, "epochs", "invalid int 'x'"};
  EXPECT_EQ(no_position.ToString(), "--param: epochs: invalid int 'x'");
  Diagnostic no_path{"p.yaml", 3, 1, "", "YAML syntax error: bad"};
  EXPECT_EQ(no_path.ToString(), "p.yaml:3:1: YAML syntax error: bad");
}

TEST(DiagnosticTest, SortsByPositionAndJoinsIntoOneStatus) {
  std::vector<Diagnostic> list = {{"p.yaml", 9, 1, "b", "second"}, {"p.yaml", 2, 4, "a", "first"}};
  SortDiagnostics(list);
  absl::Status status = DiagnosticsToStatus(list);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "p.yaml:2:4: a: first\np.yaml:9:1: b: second");
  EXPECT_TRUE(DiagnosticsToStatus({}).ok());
}

}  // namespace
}  // namespace tierflow
