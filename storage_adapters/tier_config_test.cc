#include "storage_adapters/tier_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/strings.h"

namespace tierflow::storage {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Problems(std::string_view text) {
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<TierSet> set = LoadTierText(text, "/etc/tf/tiers.yaml", &diagnostics);
  EXPECT_FALSE(set.ok());
  std::vector<std::string> lines;
  for (const Diagnostic& d : diagnostics) lines.push_back(d.ToString());
  return lines;
}

TEST(TierConfigTest, LoadsEveryKindOfTier) {
  absl::StatusOr<TierSet> set = LoadTierText(R"(tiers:
  ram:
    adapter: posix
    root: /dev/shm/tf
    durability: volatile
    capacity: 8GiB
  scratch:
    adapter: posix
    root: scratch/../nvme
    profile: {seq_read_mb_s: 3000, seq_write_mb_s: 2000, rand_read_iops: 400000, latency_us: 80}
  bulk:
    adapter: s3
    endpoint: http://127.0.0.1:8080
    bucket: data
    prefix: tierflow
    access_key_env: AWS_ACCESS_KEY_ID
    secret_key_env: AWS_SECRET_ACCESS_KEY
    scope: cluster
    durability: durable
  vault:
    adapter: posix
    root: /srv/vault
    scope: cluster
    durability: archive
)",
                                             "/etc/tf/tiers.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->tiers.size(), 4u);
  const TierConfig& ram = set->tiers[0];
  EXPECT_EQ(ram.name, "ram");
  EXPECT_EQ(ram.durability, Durability::kVolatile);
  EXPECT_EQ(ram.scope, Scope::kNode);
  EXPECT_EQ(ram.capacity, uint64_t{8} << 30);
  EXPECT_EQ(ram.line, 2);
  const TierConfig* scratch = set->Find("scratch");
  ASSERT_NE(scratch, nullptr);
  EXPECT_EQ(scratch->root, "/etc/tf/nvme");  // relative to the file, normalised
  ASSERT_TRUE(scratch->profile.has_value());
  EXPECT_EQ(scratch->profile->rand_read_iops, 400000);
  EXPECT_EQ(scratch->profile->latency_us, 80);
  const TierConfig* bulk = set->Find("bulk");
  ASSERT_NE(bulk, nullptr);
  EXPECT_EQ(bulk->adapter, "s3");
  EXPECT_EQ(bulk->Location(), "s3://data/tierflow at http://127.0.0.1:8080");
  EXPECT_EQ(bulk->secret_key_env, "AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(set->Find("vault")->durability, Durability::kArchive);
  EXPECT_EQ(set->Find("nope"), nullptr);
}

TEST(TierConfigTest, ARootStartingWithAVariableIsKeptForTheNodeToExpand) {
  absl::StatusOr<TierSet> set = LoadTierText(R"(tiers:
  job:
    adapter: posix
    root: $TMPDIR/tierflow
  node:
    adapter: posix
    root: nodes/$SLURMD_NODENAME
)",
                                             "/etc/tf/tiers.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->Find("job")->root, "$TMPDIR/tierflow");
  EXPECT_EQ(set->Find("node")->root, "/etc/tf/nodes/$SLURMD_NODENAME");  // relative to the file
}

TEST(TierConfigTest, ReportsEveryProblemWithItsPosition) {
  EXPECT_THAT(
      Problems(R"(tiers:
  fast:
    adapter: posix
    rot: /mnt/nvme
    durability: forever
    capacity: 10 parsecs
  Bad Name:
    adapter: s3
    endpoint: 127.0.0.1:8080
    root: /x
    secret_key_env: hunter2!
  fast:
    adapter: posix
    root: /y
  tape:
    adapter: ftp
)"),
      ElementsAre("/etc/tf/tiers.yaml:3:5: tiers.fast: missing 'root': the folder that holds "
                  "this tier's artifacts",
                  "/etc/tf/tiers.yaml:4:5: tiers.fast.rot: unknown key 'rot' (did you mean "
                  "'root'?); expected one of adapter, root, endpoint, bucket, region, prefix, "
                  "path_style, access_key_env, secret_key_env, scope, durability, capacity, "
                  "profile, timeout, retry",
                  "/etc/tf/tiers.yaml:5:17: tiers.fast.durability: unknown value 'forever'; "
                  "expected one of volatile, node, durable, archive",
                  "/etc/tf/tiers.yaml:6:15: tiers.fast.capacity: " +
                      std::string(ParseSize("10 parsecs").status().message()),
                  "/etc/tf/tiers.yaml:7:3: tiers.Bad Name: a tier name is 1-63 characters: "
                  "lower-case letters, digits, '-' and '_', starting with a letter",
                  "/etc/tf/tiers.yaml:8:5: tiers.Bad Name: missing 'bucket': the bucket that "
                  "holds this tier's artifacts",
                  "/etc/tf/tiers.yaml:8:5: tiers.Bad Name: missing 'access_key_env': the "
                  "environment variable holding the access key id",
                  "/etc/tf/tiers.yaml:9:15: tiers.Bad Name.endpoint: expected http://host:port "
                  "or https://host, got '127.0.0.1:8080'",
                  "/etc/tf/tiers.yaml:10:11: tiers.Bad Name.root: 'root' is for posix tiers; "
                  "this one is s3",
                  "/etc/tf/tiers.yaml:11:21: tiers.Bad Name.secret_key_env: expected the name "
                  "of an environment variable (like AWS_SECRET_ACCESS_KEY), got 'hunter2!': put "
                  "the secret itself in the environment",
                  "/etc/tf/tiers.yaml:12:3: tiers.fast: duplicate key",
                  "/etc/tf/tiers.yaml:16:14: tiers.tape.adapter: unknown value 'ftp'; expected "
                  "one of posix, s3"));
}

constexpr std::string_view kS3Tier = R"(tiers:
  bulk:
    adapter: s3
    endpoint: http://127.0.0.1:8080
    bucket: data
    access_key_env: KEY
    secret_key_env: SECRET
)";

TEST(TierConfigTest, S3TimeoutsAndRetriesAreSetPerTier) {
  absl::StatusOr<TierSet> defaults = LoadTierText(kS3Tier, "/etc/tf/tiers.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  const S3Timing& d = defaults->tiers[0].s3_timing;
  EXPECT_EQ(d.stall, std::chrono::seconds(30));
  EXPECT_EQ(d.min_rate, 1000000u);
  EXPECT_EQ(d.budget, std::chrono::seconds(60));
  absl::StatusOr<TierSet> set = LoadTierText(StrCat(kS3Tier, R"(    timeout:
      stall: 5s
      min_rate: 2MB
    retry:
      backoff: 50ms
      max_backoff: 2s
      budget: 90s
)"),
                                             "/etc/tf/tiers.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  const S3Timing& t = set->tiers[0].s3_timing;
  EXPECT_EQ(t.stall, std::chrono::seconds(5));
  EXPECT_EQ(t.min_rate, 2000000u);
  EXPECT_EQ(t.backoff, std::chrono::milliseconds(50));
  EXPECT_EQ(t.max_backoff, std::chrono::seconds(2));
  EXPECT_EQ(t.budget, std::chrono::seconds(90));
}

TEST(TierConfigTest, S3TimeoutAndRetryProblemsHaveTheirPosition) {
  EXPECT_THAT(
      Problems(StrCat(kS3Tier, R"(    timeout:
      stall: 0s
      min_rate: fast
      linger: 3s
    retry:
      backoff: 2s
      max_backoff: 1s
      budget: soon
)")),
      ElementsAre("/etc/tf/tiers.yaml:9:14: tiers.bulk.timeout.stall: must be more than 0, got "
                  "'0s'",
                  "/etc/tf/tiers.yaml:10:17: tiers.bulk.timeout.min_rate: " +
                      std::string(ParseSize("fast").status().message()),
                  "/etc/tf/tiers.yaml:11:7: tiers.bulk.timeout.linger: unknown key 'linger'; "
                  "expected one of stall, min_rate",
                  "/etc/tf/tiers.yaml:13:7: tiers.bulk.retry: max_backoff (1s) is less than "
                  "backoff (2s)",
                  "/etc/tf/tiers.yaml:15:15: tiers.bulk.retry.budget: " +
                      std::string(ParseDuration("soon").status().message())));
  EXPECT_THAT(Problems(R"(tiers:
  disk:
    adapter: posix
    root: /x
    retry: {budget: 1m}
)"),
              ElementsAre("/etc/tf/tiers.yaml:5:12: tiers.disk.retry: 'retry' is for s3 tiers; "
                          "this one is posix"));
}

TEST(TierConfigTest, StructuralProblems) {
  EXPECT_THAT(Problems(""),
              ElementsAre("/etc/tf/tiers.yaml: expected a map with 'tiers', got null"));
  EXPECT_THAT(Problems("tier: {}\n"),
              ElementsAre("/etc/tf/tiers.yaml:1:1: tier: unknown key 'tier' (did you mean "
                          "'tiers'?); expected one of tiers",
                          "/etc/tf/tiers.yaml:1:1: missing 'tiers': a map from tier name to its "
                          "settings"));
  EXPECT_THAT(Problems("tiers: [a, b]\n"),
              ElementsAre("/etc/tf/tiers.yaml:1:8: tiers: expected a map from tier name to its "
                          "settings, got a list"));
  EXPECT_THAT(Problems("tiers:\n  a: [\n"), ::testing::SizeIs(1));
}

TEST(TierConfigTest, DefaultTiersOfEmbeddedMode) {
  TierSet set = DefaultTiers("/work/.tierflow");
  ASSERT_EQ(set.tiers.size(), 3u);
  EXPECT_EQ(set.tiers[0].name, "ram");
  EXPECT_EQ(set.tiers[0].root, "/dev/shm/tierflow-" + std::to_string(getuid()));
  EXPECT_EQ(set.tiers[0].durability, Durability::kVolatile);
  EXPECT_EQ(set.tiers[1].root, "/work/.tierflow/tiers/local");
  EXPECT_EQ(set.tiers[2].name, "bulk");
  EXPECT_EQ(set.tiers[2].durability, Durability::kDurable);
  EXPECT_EQ(set.tiers[2].scope, Scope::kCluster);
}

}  // namespace
}  // namespace tierflow::storage
