#include "storage_adapters/tier_root.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "storage_adapters/local_artifact.h"

namespace tierflow::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A tier root in a fresh temporary folder, with a folder beside it that
// stands for everything outside the root, holding a canary file.
class TierRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tier-root-test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "root");
    fs::create_directories(dir_ / "outside");
    std::ofstream(dir_ / "outside" / "canary") << "keep me";
    auto root = TierRoot::Open((dir_ / "root").string());
    ASSERT_TRUE(root.ok()) << root.status();
    root_ = *root;
  }
  void TearDown() override {
    if (mounted_) umount2((dir_ / "root" / "up" / "mnt").c_str(), MNT_DETACH);
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path in(const std::string& relative) const { return dir_ / "root" / relative; }
  void ExpectOutsideUnchanged() const {
    EXPECT_EQ(ReadFile(dir_ / "outside" / "canary"), "keep me");
    int entries = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_ / "outside")) ++entries;
    EXPECT_EQ(entries, 1) << "something was written outside the root";
  }

  fs::path dir_;
  std::shared_ptr<const TierRoot> root_;
  bool mounted_ = false;
};

TEST_F(TierRootTest, OpenRefusesAMissingRootUnlessAskedToCreateIt) {
  auto missing = TierRoot::Open((dir_ / "nope").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr((dir_ / "nope").string()));
  auto made = TierRoot::Open((dir_ / "a" / "b").string(), /*create=*/true, 0700);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(fs::status(dir_ / "a" / "b").permissions() & fs::perms::all, fs::perms::owner_all);
}

// The default RAM tier's folder lies in /dev/shm, where anyone may create
// it first; these use temporary folders, never the real default.
TEST_F(TierRootTest, APrivateRootIsCreated0700AndRefusedWhenOthersCouldHaveIt) {
  const fs::path made = dir_ / "ram";
  auto fresh = TierRoot::OpenPrivate(made.string());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fs::status(made).permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_TRUE(TierRoot::OpenPrivate(made.string()).ok());  // ours, 0700: used again

  const fs::path loose = dir_ / "loose";
  fs::create_directories(loose);
  fs::permissions(loose, fs::perms::all);  // 0777
  auto refused = TierRoot::OpenPrivate(loose.string());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr(loose.string()));
  EXPECT_THAT(refused.status().message(), HasSubstr("others may write in it"));
  EXPECT_THAT(refused.status().message(), HasSubstr("mode 0777"));
  fs::permissions(loose, fs::perms::owner_all | fs::perms::group_all, fs::perm_options::replace);
  EXPECT_THAT(TierRoot::OpenPrivate(loose.string()).status().message(), HasSubstr("mode 0770"));
  // Ours and only readable by others (an older tierflow's 0755): closed.
  fs::permissions(loose,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  fs::perm_options::replace);
  ASSERT_TRUE(TierRoot::OpenPrivate(loose.string()).ok());
  EXPECT_EQ(fs::status(loose).permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_THAT(refused.status().message(), HasSubstr("owner uid " + std::to_string(geteuid())));

  const fs::path theirs = dir_ / "theirs";
  fs::create_directories(theirs);
  fs::permissions(theirs, fs::perms::owner_all, fs::perm_options::replace);
  ASSERT_EQ(chown(theirs.c_str(), 65534, 65534), 0) << "needs root to hand a folder to nobody";
  refused = TierRoot::OpenPrivate(theirs.string());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr(theirs.string()));
  EXPECT_THAT(refused.status().message(),
              HasSubstr("another user owns it (owner uid 65534, mode 0700)"));

  const fs::path link = dir_ / "link";
  fs::create_directory_symlink(made, link);  // even to a folder of ours
  refused = TierRoot::OpenPrivate(link.string());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("it is a symlink"));
}

TEST_F(TierRootTest, RelativeAcceptsPathsUnderTheRootOnly) {
  EXPECT_EQ(*root_->Relative((dir_ / "root" / "runs" / "r1").string()), "runs/r1");
  EXPECT_EQ(*root_->Relative("runs/r1/"), "runs/r1");
  EXPECT_EQ(*root_->Relative((dir_ / "root").string()), "");
  EXPECT_FALSE(root_->Relative((dir_ / "outside" / "canary").string()).ok());
  EXPECT_FALSE(root_->Relative("../outside/canary").ok());
  EXPECT_FALSE(root_->Relative("runs/../../outside").ok());
}

TEST_F(TierRootTest, CreatesFoldersAndFilesAndWritesAtomically) {
  ASSERT_TRUE(root_->CreateFolders("runs/r1/stage").ok());
  EXPECT_TRUE(fs::is_directory(in("runs/r1/stage")));
  auto file = root_->CreateFile("runs/r1/stage/new/file", 0600);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(write(file->get(), "abc", 3), 3);
  EXPECT_EQ(ReadFile(in("runs/r1/stage/new/file")), "abc");
  // O_EXCL: an existing entry is never written through.
  EXPECT_FALSE(root_->CreateFile("runs/r1/stage/new/file").ok());
  ASSERT_TRUE(root_->WriteFile("runs/r1/manifest.json", "{}\n").ok());
  ASSERT_TRUE(root_->WriteFile("runs/r1/manifest.json", "{\"a\": 1}\n").ok());
  EXPECT_EQ(ReadFile(in("runs/r1/manifest.json")), "{\"a\": 1}\n");
  auto read = root_->OpenRead("runs/r1/manifest.json");
  ASSERT_TRUE(read.ok()) << read.status();
}

TEST_F(TierRootTest, RenamesLinksStatsAndRemovesInsideTheRoot) {
  ASSERT_TRUE(root_->WriteFile("a/file", "x").ok());
  ASSERT_TRUE(root_->Rename("a/file", "b/c/file").ok());
  EXPECT_FALSE(fs::exists(in("a/file")));
  EXPECT_EQ(ReadFile(in("b/c/file")), "x");
  ASSERT_TRUE(root_->Link("b/c/file", "d/linked").ok());
  auto info = root_->Stat("d/linked");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->st_nlink, 2u);
  EXPECT_EQ(root_->Stat("d/none").status().code(), absl::StatusCode::kNotFound);
  // In the way: AlreadyExists, so a caller can move it aside.
  fs::create_directories(in("full/x"));
  fs::create_directories(in("other/y"));
  EXPECT_EQ(root_->Rename("other", "full").code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(root_->Remove("d/linked").ok());
  EXPECT_TRUE(root_->Remove("d/linked").ok());  // nothing there: fine
  ASSERT_TRUE(root_->RemoveTree("b").ok());
  EXPECT_FALSE(fs::exists(in("b")));
  EXPECT_TRUE(root_->RemoveTree("b").ok());
  ASSERT_TRUE(root_->SyncTree("full").ok());
}

TEST_F(TierRootTest, ASymlinkComponentPointingOutsideFailsEveryOperation) {
  fs::create_directories(in("runs"));
  fs::create_directory_symlink(dir_ / "outside", in("runs/r1"));
  fs::create_symlink(dir_ / "outside" / "canary", in("link-to-canary"));

  absl::Status folders = root_->CreateFolders("runs/r1/stage");
  EXPECT_EQ(folders.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(folders.message(), HasSubstr("runs/r1"));
  EXPECT_THAT(folders.message(), HasSubstr("symlink"));
  EXPECT_FALSE(root_->CreateFile("runs/r1/planted").ok());
  EXPECT_FALSE(root_->WriteFile("runs/r1/canary", "overwritten").ok());
  EXPECT_FALSE(root_->OpenRead("link-to-canary").ok());
  EXPECT_FALSE(root_->OpenRead("runs/r1/canary").ok());
  ASSERT_TRUE(root_->WriteFile("staged", "new").ok());
  EXPECT_FALSE(root_->Rename("staged", "runs/r1/canary").ok());
  EXPECT_FALSE(root_->Rename("runs/r1/canary", "stolen").ok());
  EXPECT_FALSE(root_->Link("runs/r1/canary", "stolen").ok());
  EXPECT_FALSE(root_->Remove("runs/r1/canary").ok());
  EXPECT_FALSE(root_->RemoveTree("runs/r1/canary").ok());
  EXPECT_FALSE(root_->Stat("runs/r1/canary").ok());
  EXPECT_FALSE(root_->SyncTree("runs/r1/canary").ok());
  EXPECT_FALSE(root_->OpenFolder("runs/r1", /*create=*/false).ok());
  EXPECT_FALSE(fs::exists(in("stolen")));
  ExpectOutsideUnchanged();
}

TEST_F(TierRootTest, RemoveTreeUnlinksSymlinksInsteadOfFollowingThem) {
  fs::create_directories(in("runs/r1/out/sub"));
  std::ofstream(in("runs/r1/out/sub/file")) << "x";
  fs::create_directory_symlink(dir_ / "outside", in("runs/r1/out/door"));
  fs::create_symlink(dir_ / "outside" / "canary", in("runs/r1/out/sub/canary"));
  // The tree's top itself a symlink: the link goes, not its target.
  fs::create_directory_symlink(dir_ / "outside", in("runs/top"));
  ASSERT_TRUE(root_->RemoveTree("runs/r1/out").ok());
  ASSERT_TRUE(root_->RemoveTree("runs/top").ok());
  EXPECT_FALSE(fs::exists(fs::symlink_status(in("runs/r1/out"))));
  EXPECT_FALSE(fs::exists(fs::symlink_status(in("runs/top"))));
  ExpectOutsideUnchanged();
}

// A folder swapped for a symlink to the outside while the removal runs (the
// eviction attack): whatever the interleaving, nothing outside goes.
TEST_F(TierRootTest, RemoveWithUnfinishedWritesTakesTheTemporariesBesideThePath) {
  // A gathered folder: item 0 half copied by a writer killed before its
  // rename, beside finished items and another item's temporary.
  fs::create_directories(in("gather/0"));
  std::ofstream(in("gather/0/part")) << "half";
  std::ofstream(in("gather/.0.tierflow-tmp-1234")) << "cut off";
  fs::create_directories(in("gather/.0.tierflow-tmp-dir"));
  std::ofstream(in("gather/.0.tierflow-tmp-dir/x")) << "cut off";
  std::ofstream(in("gather/1")) << "item 1";
  std::ofstream(in("gather/.10.tierflow-tmp-5")) << "item 10's own";
  fs::create_symlink(dir_ / "outside", in("gather/.0.tierflow-tmp-link"));
  ASSERT_TRUE(root_->RemoveWithUnfinishedWrites("gather/0").ok());
  EXPECT_FALSE(fs::exists(in("gather/0")));
  EXPECT_FALSE(fs::exists(in("gather/.0.tierflow-tmp-1234")));
  EXPECT_FALSE(fs::exists(in("gather/.0.tierflow-tmp-dir")));
  EXPECT_FALSE(fs::is_symlink(in("gather/.0.tierflow-tmp-link")));
  EXPECT_EQ(ReadFile(in("gather/1")), "item 1");
  EXPECT_EQ(ReadFile(in("gather/.10.tierflow-tmp-5")), "item 10's own");
  ExpectOutsideUnchanged();
  // Nothing there at all is not an error.
  EXPECT_TRUE(root_->RemoveWithUnfinishedWrites("gather/7").ok());
  EXPECT_TRUE(root_->RemoveWithUnfinishedWrites("nowhere/7").ok());
}

TEST_F(TierRootTest, ASymlinkSwappedInDuringARemovalIsNeverFollowed) {
  int swapped = 0;
  for (int round = 0; round < 10; ++round) {
    fs::create_directories(in("w/copy"));
    for (int i = 0; i < 200; ++i) {
      fs::create_directories(in("w/copy/d" + std::to_string(i)));
      std::ofstream(in("w/copy/d" + std::to_string(i) + "/f")) << i;
    }
    for (int i = 0; i < 20; ++i) std::ofstream(dir_ / "outside" / ("f" + std::to_string(i))) << i;
    std::atomic<bool> done{false};
    std::thread swapper([&] {
      // Folder after folder moved away and replaced by a symlink outside.
      for (int i = 199; i >= 0 && !done; --i) {
        const fs::path folder = in("w/copy/d" + std::to_string(i));
        std::error_code ignored;
        fs::rename(folder, in("w/moved" + std::to_string(i)), ignored);
        fs::create_directory_symlink(dir_ / "outside", folder, ignored);
      }
    });
    absl::Status removed = root_->RemoveTree("w/copy");
    done = true;
    swapper.join();
    // A removal racing a writer that keeps adding entries gives up after a
    // bounded number of passes, saying so (on a loaded machine the swapper
    // can win them all); once the writer stops, it completes.
    if (!removed.ok()) {
      EXPECT_TRUE(absl::IsAborted(removed)) << removed;
      EXPECT_THAT(removed.message(), HasSubstr("kept changing while it was being removed"));
      removed = root_->RemoveTree("w/copy");
    }
    EXPECT_TRUE(removed.ok()) << removed;
    EXPECT_FALSE(fs::exists(in("w/copy")));
    EXPECT_EQ(ReadFile(dir_ / "outside" / "canary"), "keep me");
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(fs::exists(dir_ / "outside" / ("f" + std::to_string(i))))
          << "round " << round << ": f" << i << " outside the root was deleted";
    }
    for (const auto& entry : fs::directory_iterator(in("w"))) {
      if (entry.path().filename().string().rfind("moved", 0) == 0) {
        ++swapped;
        break;
      }
    }
    std::error_code ignored;
    fs::remove_all(in("w"), ignored);
  }
  // The swaps did happen (some round raced the removal): the test tested.
  EXPECT_GT(swapped, 0);
}

TEST_F(TierRootTest, RemoveTreeNeverCrossesIntoAnotherMount) {
  fs::create_directories(in("up/mnt"));
  std::ofstream(in("up/beside")) << "x";
  if (mount("tierflow-test", in("up/mnt").c_str(), "tmpfs", 0, "size=1m") != 0) {
    FAIL() << "cannot mount a tmpfs for this test (" << std::strerror(errno)
           << "): it needs root (CAP_SYS_ADMIN)";
  }
  mounted_ = true;
  std::ofstream(in("up/mnt/on-the-mount")) << "keep";
  absl::Status removed = root_->RemoveTree("up/mnt");
  EXPECT_EQ(removed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(removed.message(), HasSubstr("another mount"));
  EXPECT_THAT(removed.message(), HasSubstr("up/mnt"));
  EXPECT_EQ(ReadFile(in("up/mnt/on-the-mount")), "keep");
  // Nor from above it: what is beside the mount may go, the mount stays.
  absl::Status whole = root_->RemoveTree("up");
  EXPECT_EQ(whole.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(whole.message(), HasSubstr("up/mnt"));
  EXPECT_EQ(ReadFile(in("up/mnt/on-the-mount")), "keep");
}

TEST_F(TierRootTest, PublishReplacesLeftoversAndRefusesASymlinkedDestination) {
  fs::create_directories(in("runs/r/staging/out/a"));
  std::ofstream(in("runs/r/staging/out/a/data")) << "bytes";
  fs::create_directories(in("runs/r/s/out/leftover"));
  ASSERT_TRUE(PublishArtifact(*root_, in("runs/r/staging/out").string(),
                              in("runs/r/s/out").string(), /*durable=*/true)
                  .ok());
  EXPECT_EQ(ReadFile(in("runs/r/s/out/a/data")), "bytes");
  EXPECT_FALSE(fs::exists(in("runs/r/s/out/leftover")));
  // The artifact's folder a symlink to the outside (the resume attack).
  std::ofstream(in("runs/r/staging/file")) << "new";
  fs::create_directory_symlink(dir_ / "outside", in("runs/r/t"));
  absl::Status refused =
      PublishArtifact(*root_, in("runs/r/staging/file").string(), in("runs/r/t/canary").string());
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.message(), HasSubstr("runs/r/t"));
  // A final path that is itself a symlink: replaced, its target untouched.
  fs::create_symlink(dir_ / "outside" / "canary", in("runs/r/s/file"));
  ASSERT_TRUE(
      PublishArtifact(*root_, in("runs/r/staging/file").string(), in("runs/r/s/file").string())
          .ok());
  EXPECT_EQ(ReadFile(in("runs/r/s/file")), "new");
  EXPECT_FALSE(fs::is_symlink(in("runs/r/s/file")));
  // A path outside the root is refused before anything is done.
  EXPECT_FALSE(
      PublishArtifact(*root_, in("runs/r/s/file").string(), (dir_ / "outside" / "canary").string())
          .ok());
  ExpectOutsideUnchanged();
}

TEST_F(TierRootTest, LinkArtifactBuildsInsideTheRootAndRefusesSymlinksInTheSource) {
  fs::create_directories(dir_ / "source" / "t");
  std::ofstream(dir_ / "source" / "t" / "f") << "content";
  ASSERT_TRUE(LinkArtifact((dir_ / "source").string(), *root_, "runs/r/s/out").ok());
  EXPECT_EQ(ReadFile(in("runs/r/s/out/t/f")), "content");
  fs::create_symlink(dir_ / "outside" / "canary", dir_ / "source" / "t" / "l");
  absl::Status refused = LinkArtifact((dir_ / "source").string(), *root_, "runs/r/s/out2");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("source/t/l"));
  EXPECT_FALSE(fs::exists(in("runs/r/s/out2")));
  // No temporary left behind either.
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(in("runs/r/s"))) ++entries;
  EXPECT_EQ(entries, 1);
  fs::create_directory_symlink(dir_ / "outside", in("runs/r/evil"));
  EXPECT_FALSE(LinkArtifact((dir_ / "source" / "t" / "f").string(), *root_, "runs/r/evil/x").ok());
  ExpectOutsideUnchanged();
}

TEST_F(TierRootTest, HashingRefusesSymlinksNamingThePath) {
  fs::create_directories(in("out/sub"));
  std::ofstream(in("out/sub/f")) << "x";
  ASSERT_TRUE(HashArtifact(in("out").string()).ok());
  fs::create_symlink("f", in("out/sub/l"));
  auto hashed = HashArtifact(in("out").string());
  EXPECT_EQ(hashed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(hashed.status().message(), HasSubstr(in("out/sub/l").string()));
  EXPECT_THAT(hashed.status().message(), HasSubstr("symlink"));
  fs::create_symlink(in("out/sub/f"), in("file-link"));
  EXPECT_EQ(HashArtifact(in("file-link").string()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tierflow::storage
