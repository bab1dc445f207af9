#include "scheduler/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace tierflow::scheduler {
namespace {

std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tierflow-store.XXXXXX").string();
  return mkdtemp(pattern.data());
}

TEST(StoreTest, CreatesSchemaInWalModeAndReopens) {
  std::string dir = TempDir();
  std::string path = dir + "/nested/state/tierflow.db";
  {
    auto db = OpenStore(path);
    ASSERT_TRUE(db.ok()) << db.status();
    auto mode = (*db)->Prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(*mode->Step());
    EXPECT_EQ(mode->Text(0), "wal");
    ASSERT_TRUE((*db)
                    ->Execute("INSERT INTO pipelines(name, yaml_hash, yaml, file, created_at) "
                              "VALUES ('p', 'h', 'name: p', '/p.yaml', 1)")
                    .ok());
  }
  auto again = OpenStore(path);
  ASSERT_TRUE(again.ok()) << again.status();
  auto count = (*again)->Prepare("SELECT count(*) FROM pipelines");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->Int(0), 1);
  auto reader = OpenStoreReadOnly(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::filesystem::remove_all(dir);
}

TEST(StoreTest, RefusesNewerSchema) {
  std::string dir = TempDir();
  std::string path = dir + "/tierflow.db";
  {
    auto db = OpenStore(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Execute("PRAGMA user_version = 99").ok());
  }
  auto db = OpenStore(path);
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("schema version 99, newer than this tierflow"),
            std::string::npos)
      << db.status();
  std::filesystem::remove_all(dir);
}

TEST(StoreTest, ReadOnlyOpenOfMissingDatabaseNamesPath) {
  auto db = OpenStoreReadOnly("/nonexistent/tierflow.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(db.status().message().find("/nonexistent/tierflow.db"), std::string::npos);
}

TEST(StoreTest, ConstraintViolationIsAnError) {
  std::string dir = TempDir();
  auto db = OpenStore(dir + "/tierflow.db");
  ASSERT_TRUE(db.ok());
  // attempts.run_id/task_id must name an existing task (foreign keys are on).
  absl::Status status = (*db)->Execute(
      "INSERT INTO attempts(run_id, task_id, number, state, worker, command, started_at, "
      "log_path) VALUES ('r', 't', 1, 'running', 'local', '{}', 1, '/l')");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("FOREIGN KEY"), std::string::npos) << status;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tierflow::scheduler
