// ReportBatcher (worker/report_batcher.h).
#include "worker/report_batcher.h"

#include <utility>

#include "rpc/task_proto.h"

namespace tierflow::worker {

ReportBatcher::ReportBatcher(Send send, bool batches) : send_(std::move(send)), batches_(batches) {}

void ReportBatcher::Add(const TaskReport& report) {
  v1::TaskReport proto;
  rpc::ToProto(report, &proto);
  std::lock_guard lock(mu_);
  if (!batches_) {
    v1::WorkerMessage message;
    *message.mutable_report() = std::move(proto);
    send_(message);
    return;
  }
  if (report.outcome == TaskReport::Outcome::kStarted) {
    held_.push_back(std::move(proto));
    return;
  }
  SendHeld(&proto);
}

void ReportBatcher::Flush() {
  std::lock_guard lock(mu_);
  if (!held_.empty()) SendHeld(nullptr);
}

void ReportBatcher::SendHeld(v1::TaskReport* last) {
  v1::WorkerMessage message;
  v1::ReportBatch* batch = message.mutable_reports();
  for (v1::TaskReport& held : held_) *batch->add_reports() = std::move(held);
  held_.clear();
  if (last != nullptr) *batch->add_reports() = std::move(*last);
  send_(message);
}

}  // namespace tierflow::worker
