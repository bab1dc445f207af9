#include "storage_adapters/testing/fault_adapter.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow::storage::testing {
namespace {

std::string_view OpName(FaultOp op) {
  switch (op) {
    case kOpenWrite:
    case kWrite:
    case kCommit:
    case kPutFile:
      return "write";
    case kOpenRead:
    case kRead:
    case kGetFile:
      return "read";
    case kStat:
      return "stat";
    case kList:
      return "list";
    case kDelete:
      return "delete";
  }
  return "use";
}

// What a real store would say, so messages read like the real thing.
std::string_view Cause(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kResourceExhausted:
      return "the tier is full";
    case absl::StatusCode::kUnavailable:
      return "the store cannot be reached";
    case absl::StatusCode::kDataLoss:
      return "the bytes were damaged";
    default:
      return absl::StatusCodeToString(code);
  }
}

class FaultWriter final : public ObjectWriter {
 public:
  FaultWriter(std::unique_ptr<ObjectWriter> base, const std::string& tier, std::string key,
              FaultInjector* faults)
      : base_(std::move(base)), tier_(tier), key_(std::move(key)), faults_(faults) {}

  absl::Status Write(std::string_view data) override {
    TF_RETURN_IF_ERROR(faults_->Check(kWrite, tier_, key_, written_ + data.size()));
    written_ += data.size();
    return base_->Write(data);
  }
  absl::Status Commit() override {
    TF_RETURN_IF_ERROR(faults_->Check(kCommit, tier_, key_, written_));
    return base_->Commit();
  }
  void SetContentHashSource(std::function<absl::StatusOr<std::string>()> source) override {
    base_->SetContentHashSource(std::move(source));
  }

 private:
  std::unique_ptr<ObjectWriter> base_;
  const std::string& tier_;  // the adapter's, which outlives its writers
  const std::string key_;
  FaultInjector* faults_;
  uint64_t written_ = 0;
};

class FaultReader final : public ObjectReader {
 public:
  FaultReader(std::unique_ptr<ObjectReader> base, const std::string& tier, std::string key,
              FaultInjector* faults)
      : base_(std::move(base)), tier_(tier), key_(std::move(key)), faults_(faults) {}

  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    TF_RETURN_IF_ERROR(faults_->Check(kRead, tier_, key_, read_));
    if (const size_t limit = faults_->short_reads(); limit > 0 && buffer.size() > limit) {
      buffer = buffer.first(limit);
    }
    TF_ASSIGN_OR_RETURN(size_t n, base_->Read(buffer));
    read_ += n;
    return n;
  }

 private:
  std::unique_ptr<ObjectReader> base_;
  const std::string& tier_;
  const std::string key_;
  FaultInjector* faults_;
  uint64_t read_ = 0;
};

class FaultAdapter final : public Adapter {
 public:
  FaultAdapter(std::unique_ptr<Adapter> base, std::string tier,
               std::shared_ptr<FaultInjector> faults)
      : base_(std::move(base)), tier_(std::move(tier)), faults_(std::move(faults)) {}

  RemoteStore* remote() override { return base_->remote(); }
  std::string_view kind() const override { return "fault"; }
  const Adapter* wrapped() const override { return base_.get(); }

  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWrite(std::string_view key) override {
    TF_RETURN_IF_ERROR(faults_->Check(kOpenWrite, tier_, key, 0));
    TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, base_->OpenWrite(key));
    return std::unique_ptr<ObjectWriter>(
        new FaultWriter(std::move(writer), tier_, std::string(key), faults_.get()));
  }
  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenRead(std::string_view key, uint64_t offset,
                                                         std::optional<uint64_t> length) override {
    TF_RETURN_IF_ERROR(faults_->Check(kOpenRead, tier_, key, 0));
    TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, base_->OpenRead(key, offset, length));
    return std::unique_ptr<ObjectReader>(
        new FaultReader(std::move(reader), tier_, std::string(key), faults_.get()));
  }
  absl::StatusOr<ObjectInfo> Stat(std::string_view key) override {
    TF_RETURN_IF_ERROR(faults_->Check(kStat, tier_, key, 0));
    return base_->Stat(key);
  }
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    TF_RETURN_IF_ERROR(faults_->Check(kList, tier_, prefix, 0));
    return base_->List(prefix);
  }
  absl::Status Delete(std::string_view key) override {
    TF_RETURN_IF_ERROR(faults_->Check(kDelete, tier_, key, 0));
    return base_->Delete(key);
  }
  // Whole files are faulted per call, not per byte: the wrapped adapter
  // moves them its own way (copy_file_range, parallel parts).
  absl::Status PutFile(std::string_view key, const std::string& local_path) override {
    TF_RETURN_IF_ERROR(faults_->Check(kPutFile, tier_, key, 0));
    return base_->PutFile(key, local_path);
  }
  absl::Status GetFile(std::string_view key, const std::string& local_path) override {
    TF_RETURN_IF_ERROR(faults_->Check(kGetFile, tier_, key, 0));
    return base_->GetFile(key, local_path);
  }

 private:
  const std::unique_ptr<Adapter> base_;
  const std::string tier_;
  const std::shared_ptr<FaultInjector> faults_;
};

}  // namespace

void FaultInjector::Add(Fault fault) {
  std::lock_guard<std::mutex> lock(mutex_);
  faults_.push_back(std::move(fault));
}

void FaultInjector::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  faults_.clear();
  short_reads_ = 0;
}

void FaultInjector::SetShortReads(size_t max_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  short_reads_ = max_bytes;
}

size_t FaultInjector::short_reads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return short_reads_;
}

int FaultInjector::injected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return injected_;
}

absl::Status FaultInjector::Check(FaultOp op, std::string_view tier, std::string_view key,
                                  uint64_t stream_bytes) {
  std::chrono::milliseconds delay{0};
  absl::Status error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Fault& fault : faults_) {
      if ((fault.ops & op) == 0 || key.substr(0, fault.key_prefix.size()) != fault.key_prefix) {
        continue;
      }
      if ((op == kWrite && stream_bytes <= fault.after_bytes && fault.after_bytes > 0) ||
          (op == kRead && stream_bytes < fault.after_bytes)) {
        continue;
      }
      delay = std::max(delay, fault.delay);
      if (fault.code == absl::StatusCode::kOk || !error.ok() || fault.times == 0) continue;
      if (fault.skip > 0) {
        --fault.skip;
        continue;
      }
      if (fault.times > 0) --fault.times;
      ++injected_;
      error = absl::Status(fault.code, StrCat("tier ", tier, ": cannot ", OpName(op), " '", key,
                                              "': ", Cause(fault.code), " (injected fault)"));
    }
  }
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  return error;
}

std::unique_ptr<Adapter> WrapWithFaults(std::unique_ptr<Adapter> base, std::string tier,
                                        std::shared_ptr<FaultInjector> faults) {
  return std::make_unique<FaultAdapter>(std::move(base), std::move(tier), std::move(faults));
}

}  // namespace tierflow::storage::testing
