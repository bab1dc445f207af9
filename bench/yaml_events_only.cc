// Second baseline for bench/dag_scale: the least a loader built on yaml-cpp
// can do. Runs yaml-cpp's parser over one file with an event handler that
// only counts, building no node tree, and prints the count. Where this is
// already slower than a target, no yaml-cpp-based loader can meet it.
//
// Usage: yaml_events_only FILE
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

namespace {

class CountingHandler : public YAML::EventHandler {
 public:
  uint64_t nodes() const { return nodes_; }
  uint64_t scalar_bytes() const { return scalar_bytes_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { ++nodes_; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++nodes_; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string& value) override {
    ++nodes_;
    scalar_bytes_ += value.size();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++nodes_;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++nodes_;
  }
  void OnMapEnd() override {}

 private:
  uint64_t nodes_ = 0;
  uint64_t scalar_bytes_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 1;
  }
  try {
    YAML::Parser parser(in);
    CountingHandler handler;
    while (parser.HandleNextDocument(handler)) {
    }
    std::printf("%llu nodes, %llu scalar bytes\n", static_cast<unsigned long long>(handler.nodes()),
                static_cast<unsigned long long>(handler.scalar_bytes()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
    return 1;
  }
  return 0;
}
