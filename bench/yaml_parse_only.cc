// Baseline for bench/dag_scale: the least any YAML pipeline loader must do.
// Parses one file with yaml-cpp and walks every node, touching every scalar,
// then prints the node count. `tierflow validate` and `tierflow plan` are
// measured against this in the same run.
//
// Usage: yaml_parse_only FILE
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

struct Counts {
  uint64_t nodes = 0;
  uint64_t scalar_bytes = 0;
};

// Iterative, so that deep documents cannot overflow the stack.
Counts Walk(const YAML::Node& root) {
  Counts counts;
  std::vector<YAML::Node> pending = {root};
  while (!pending.empty()) {
    YAML::Node node = pending.back();
    pending.pop_back();
    ++counts.nodes;
    switch (node.Type()) {
      case YAML::NodeType::Scalar:
        counts.scalar_bytes += node.Scalar().size();
        break;
      case YAML::NodeType::Sequence:
        for (const YAML::Node& child : node) pending.push_back(child);
        break;
      case YAML::NodeType::Map:
        for (const auto& entry : node) {
          pending.push_back(entry.first);
          pending.push_back(entry.second);
        }
        break;
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        break;
    }
  }
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  try {
    Counts counts = Walk(YAML::LoadFile(argv[1]));
    std::printf("%llu nodes, %llu scalar bytes\n", static_cast<unsigned long long>(counts.nodes),
                static_cast<unsigned long long>(counts.scalar_bytes));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
    return 1;
  }
  return 0;
}
