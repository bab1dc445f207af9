// A compact, read-only YAML document tree with source positions, built from
// libyaml's event parser. yaml-cpp was measured first (bench/README.md): its
// scanner alone takes ~0.8 s on a 100k-stage pipeline and its YAML::Node
// ~4.7 KiB per stage, which rules out planning 100k tasks in 1 s / 300 MiB;
// libyaml parses the same file in ~0.2 s and this tree keeps a few dozen
// bytes per node. Map entries keep their order and their duplicates (the
// loaders report duplicate keys). Aliases share the anchored node instead of
// copying it, so alias bombs cost nothing. The pipeline loader (dag/) and the
// tiers loader (storage_adapters/) read it. A document is immutable once
// parsed: any number of threads may read it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tierflow {

class YamlDocument;

// A handle to one node of a YamlDocument; cheap to copy, valid while the
// document lives. A default-constructed node is "undefined" (absent).
class YamlNode {
 public:
  enum class Type : uint8_t { kUndefined, kNull, kScalar, kSequence, kMap };
  struct Entry;

  YamlNode() = default;

  Type type() const;
  bool IsDefined() const { return type() != Type::kUndefined; }
  bool IsNull() const { return type() == Type::kNull; }
  bool IsScalar() const { return type() == Type::kScalar; }
  bool IsSequence() const { return type() == Type::kSequence; }
  bool IsMap() const { return type() == Type::kMap; }

  // Scalar text ("" for other types); valid while the document lives.
  std::string_view Scalar() const;
  // True for plain (unquoted, untagged) scalars: only those may be read as
  // numbers, booleans or null; "3" in quotes is the string 3.
  bool IsPlain() const;
  // 1-based position of the node's first character; 0 when undefined.
  int line() const;
  int column() const;

  // Children of a sequence, in order.
  size_t size() const;  // sequence elements or map entries
  YamlNode at(size_t index) const;
  // Entries of a map, in order, duplicates kept.
  Entry entry(size_t index) const;
  // First value whose key is the plain or quoted scalar `key`; undefined if none.
  YamlNode Find(std::string_view key) const;

  // "a map", "a list", "a string" ... for messages like "expected a map, got a list".
  std::string_view Describe() const;

 private:
  friend class YamlDocument;
  YamlNode(const YamlDocument* doc, uint32_t index) : doc_(doc), index_(index) {}
  const YamlDocument* doc_ = nullptr;
  uint32_t index_ = 0;
};

struct YamlNode::Entry {
  YamlNode key;
  YamlNode value;
};

class YamlDocument {
 public:
  // Parses exactly one YAML document. Syntax errors (and a second document,
  // nesting deeper than kMaxDepth, an unknown alias and an alias inside the
  // node it names) are InvalidArgument "LINE:COL: message" with 1-based
  // positions. An empty text gives a null root.
  static absl::StatusOr<std::unique_ptr<YamlDocument>> Parse(std::string_view text);

  YamlNode root() const { return YamlNode(this, 0); }

  static constexpr int kMaxDepth = 200;

 private:
  friend class YamlNode;
  friend class TreeBuilder;
  struct Node {
    YamlNode::Type type = YamlNode::Type::kNull;
    bool plain = true;
    int32_t line = 0;
    int32_t column = 0;
    // Sequences and maps: their children are children_[first .. first + count)
    // (maps: key, value, key, value ...). Scalars: their text is
    // texts_[first .. first + count).
    uint32_t first = 0;
    uint32_t count = 0;
  };
  std::vector<Node> nodes_;
  std::vector<uint32_t> children_;
  // Every scalar's text, back to back: one allocation for a million
  // scalars instead of a std::string each. Parse rejects more than 4 GiB of
  // it, so offsets fit 32 bits.
  std::string texts_;
};

// The accessors are inline: the loader calls them millions of times on a
// pipeline of 100k stages.
inline YamlNode::Type YamlNode::type() const {
  return doc_ == nullptr ? Type::kUndefined : doc_->nodes_[index_].type;
}

inline std::string_view YamlNode::Scalar() const {
  if (!IsScalar()) return {};
  const YamlDocument::Node& node = doc_->nodes_[index_];
  return std::string_view(doc_->texts_).substr(node.first, node.count);
}

inline bool YamlNode::IsPlain() const { return IsScalar() && doc_->nodes_[index_].plain; }

inline int YamlNode::line() const { return doc_ == nullptr ? 0 : doc_->nodes_[index_].line; }

inline int YamlNode::column() const { return doc_ == nullptr ? 0 : doc_->nodes_[index_].column; }

inline size_t YamlNode::size() const {
  if (IsSequence()) return doc_->nodes_[index_].count;
  if (IsMap()) return doc_->nodes_[index_].count / 2;
  return 0;
}

inline YamlNode YamlNode::at(size_t i) const {
  if (!IsSequence() || i >= size()) return YamlNode();
  return YamlNode(doc_, doc_->children_[doc_->nodes_[index_].first + i]);
}

inline YamlNode::Entry YamlNode::entry(size_t i) const {
  if (!IsMap() || i >= size()) return Entry{};
  const uint32_t first = doc_->nodes_[index_].first + 2 * static_cast<uint32_t>(i);
  return Entry{YamlNode(doc_, doc_->children_[first]), YamlNode(doc_, doc_->children_[first + 1])};
}

}  // namespace tierflow
