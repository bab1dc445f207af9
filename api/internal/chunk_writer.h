// The Logs call's writer (api/cluster_server.cc): a stream of LogChunks as
// an ostream's buffer. Moved out of cluster_server.cc to keep it under 800
// lines; used only there.
#pragma once

#include <grpcpp/grpcpp.h>

#include <streambuf>
#include <string>

#include "rpc/tierflow.grpc.pb.h"

namespace tierflow::api::internal {

// A stream of LogChunks as an ostream's buffer: log bytes, or notes.
class ChunkWriter final : public std::streambuf {
 public:
  ChunkWriter(grpc::ServerWriter<v1::LogChunk>* writer, bool notes)
      : writer_(writer), notes_(notes) {}

 protected:
  int overflow(int c) override {
    if (c != traits_type::eof()) buffer_.push_back(static_cast<char>(c));
    if (buffer_.size() >= kChunk) Send();
    return c == traits_type::eof() ? 0 : c;
  }
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    buffer_.append(data, static_cast<size_t>(n));
    if (buffer_.size() >= kChunk) Send();
    return n;
  }
  int sync() override {
    Send();
    return 0;
  }

 private:
  static constexpr size_t kChunk = 64 << 10;
  void Send() {
    if (buffer_.empty()) return;
    v1::LogChunk chunk;
    if (notes_) {
      chunk.set_note(buffer_);
    } else {
      chunk.set_data(buffer_);
    }
    writer_->Write(chunk);
    buffer_.clear();
  }
  grpc::ServerWriter<v1::LogChunk>* writer_;
  const bool notes_;
  std::string buffer_;
};

}  // namespace tierflow::api::internal
