#include "common/yaml_tree.h"

#include <yaml.h>

#include <limits>
#include <unordered_map>

#include "common/strings.h"

namespace tierflow {

YamlNode YamlNode::Find(std::string_view key) const {
  for (size_t i = 0; i < size(); ++i) {
    Entry e = entry(i);
    if (e.key.IsScalar() && e.key.Scalar() == key) return e.value;
  }
  return YamlNode();
}

std::string_view YamlNode::Describe() const {
  switch (type()) {
    case Type::kUndefined:
      return "nothing";
    case Type::kNull:
      return "null";
    case Type::kScalar:
      return "a scalar";
    case Type::kSequence:
      return "a list";
    case Type::kMap:
      return "a map";
  }
  return "nothing";
}

// Turns libyaml events into YamlDocument nodes. Containers are built on a
// stack; a container's children are appended to children_ when it closes,
// so every container's children are contiguous. Iterative, so deep nesting
// cannot overflow the C stack.
class TreeBuilder {
 public:
  explicit TreeBuilder(YamlDocument* doc) : doc_(doc) {}

  // Feeds one event; returns an error message ("" when fine).
  std::string Handle(const yaml_event_t& event) {
    const yaml_mark_t& mark = event.start_mark;
    switch (event.type) {
      case YAML_SCALAR_EVENT: {
        const auto& s = event.data.scalar;
        std::string_view text(reinterpret_cast<const char*>(s.value), s.length);
        std::string_view tag = s.tag ? reinterpret_cast<const char*>(s.tag) : "";
        bool plain = s.style == YAML_PLAIN_SCALAR_STYLE && tag.empty();
        bool null = (plain && (text.empty() || text == "~" || text == "null" || text == "Null" ||
                               text == "NULL")) ||
                    tag == "tag:yaml.org,2002:null";
        if (doc_->texts_.size() + text.size() > std::numeric_limits<uint32_t>::max()) {
          return "scalars longer than 4 GiB in total";
        }
        uint32_t index = NewNode(null ? YamlNode::Type::kNull : YamlNode::Type::kScalar, mark);
        if (!null) {
          YamlDocument::Node& node = doc_->nodes_[index];
          node.plain = plain;
          node.first = static_cast<uint32_t>(doc_->texts_.size());
          node.count = static_cast<uint32_t>(text.size());
          doc_->texts_.append(text);
        }
        Add(index, s.anchor);
        return "";
      }
      case YAML_ALIAS_EVENT: {
        const char* name = reinterpret_cast<const char*>(event.data.alias.anchor);
        auto it = anchors_.find(name);
        if (it == anchors_.end()) return StrCat("unknown alias '*", name, "'");
        // An alias inside the container it names (`a: &x [*x]`) would make
        // that container its own descendant: a cycle in what must be a tree.
        for (const auto& open : open_) {
          if (open.first != it->second) continue;
          const YamlDocument::Node& anchored = doc_->nodes_[open.first];
          return StrCat("alias '*", name, "' refers to its own enclosing node (anchored '&", name,
                        "' at ", anchored.line, ":", anchored.column,
                        "), which is not finished yet: a node cannot contain itself");
        }
        Add(it->second, nullptr);
        return "";
      }
      case YAML_SEQUENCE_START_EVENT:
        return Open(NewNode(YamlNode::Type::kSequence, mark), event.data.sequence_start.anchor);
      case YAML_MAPPING_START_EVENT:
        return Open(NewNode(YamlNode::Type::kMap, mark), event.data.mapping_start.anchor);
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        Close();
        return "";
      default:
        return "";
    }
  }

 private:
  uint32_t NewNode(YamlNode::Type type, const yaml_mark_t& mark) {
    YamlDocument::Node node;
    node.type = type;
    node.line = static_cast<int32_t>(mark.line + 1);
    node.column = static_cast<int32_t>(mark.column + 1);
    doc_->nodes_.push_back(node);
    return static_cast<uint32_t>(doc_->nodes_.size() - 1);
  }
  void Add(uint32_t index, const yaml_char_t* anchor) {
    if (anchor != nullptr) anchors_[reinterpret_cast<const char*>(anchor)] = index;
    if (!open_.empty()) pending_.push_back(index);
  }
  std::string Open(uint32_t index, const yaml_char_t* anchor) {
    if (open_.size() >= YamlDocument::kMaxDepth) {
      return StrCat("nesting deeper than ", YamlDocument::kMaxDepth, " levels");
    }
    Add(index, anchor);
    open_.push_back({index, pending_.size()});
    return "";
  }
  void Close() {
    auto [index, start] = open_.back();
    open_.pop_back();
    YamlDocument::Node& node = doc_->nodes_[index];
    node.first = static_cast<uint32_t>(doc_->children_.size());
    node.count = static_cast<uint32_t>(pending_.size() - start);
    doc_->children_.insert(doc_->children_.end(), pending_.begin() + static_cast<long>(start),
                           pending_.end());
    pending_.resize(start);
  }

  YamlDocument* doc_;
  std::unordered_map<std::string, uint32_t> anchors_;
  std::vector<std::pair<uint32_t, size_t>> open_;  // container, its first pending child
  std::vector<uint32_t> pending_;                  // children of open containers
};

absl::StatusOr<std::unique_ptr<YamlDocument>> YamlDocument::Parse(std::string_view text) {
  auto doc = std::make_unique<YamlDocument>();
  // Room for the tree up front, so that growing it does not copy tens of MB
  // and fault in twice the pages: block-style YAML (pipelines) takes 6 to 8
  // bytes per node, and the scalars' text is at most about the file's size.
  // A large reservation only maps address space; pages never written cost
  // no memory.
  doc->nodes_.reserve(text.size() / 6 + 1);
  doc->children_.reserve(text.size() / 6);
  doc->texts_.reserve(text.size());
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return absl::ResourceExhaustedError("out of memory");
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  TreeBuilder builder(doc.get());
  absl::Status status;
  int documents = 0;
  auto error_at = [&](const yaml_mark_t& mark, std::string_view message) {
    status = absl::InvalidArgumentError(StrCat(mark.line + 1, ":", mark.column + 1, ": ", message));
  };
  for (bool done = false; !done && status.ok();) {
    yaml_event_t event;
    if (!yaml_parser_parse(&parser, &event)) {
      std::string message = parser.problem ? parser.problem : "syntax error";
      const size_t at = parser.problem_mark.index;
      if (at < text.size() && text[at] == '\t') {
        message = "tab character: YAML indentation must use spaces";
      } else if (parser.context) {
        message = StrCat(message, " (", parser.context, " that starts at ",
                         parser.context_mark.line + 1, ":", parser.context_mark.column + 1, ")");
      }
      error_at(parser.problem_mark, message);
      break;
    }
    if (event.type == YAML_DOCUMENT_START_EVENT && ++documents > 1) {
      error_at(event.start_mark, "expected one YAML document, found a second one");
    } else if (event.type == YAML_STREAM_END_EVENT) {
      done = true;
    } else if (std::string error = builder.Handle(event); !error.empty()) {
      error_at(event.start_mark, error);
    }
    yaml_event_delete(&event);
  }
  yaml_parser_delete(&parser);
  if (!status.ok()) return status;
  if (doc->nodes_.empty()) doc->nodes_.assign(1, Node{});  // empty text: a null root
  return doc;
}

}  // namespace tierflow
