// The lineage renderings of run_service.h for people and for Graphviz: an
// indented tree from the root artifact (or from a run's sources) and a DOT
// digraph with every label escaped. Stateless; safe from any thread.
#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/internal/run_render.h"
#include "api/run_service.h"
#include "common/strings.h"

namespace tierflow::api {
namespace {

// The artifact's reference, without the run when it is `context_run`'s.
// Raw: callers escape it for where it goes.
std::string ArtifactLabel(const ArtifactRow& artifact, const std::string& context_run) {
  return artifact.run_id == context_run ? StrCat(artifact.task_id, "/", artifact.name)
                                        : artifact.Ref();
}

std::string AttemptLabel(const AttemptRow& attempt, const std::string& context_run) {
  return StrCat(AttemptRef(attempt.run_id, attempt.task_id, attempt.number, context_run), " (",
                StateWord(attempt.state), ")");
}

class LineageText {
 public:
  LineageText(const LineageGraph& graph, std::ostream& out) : graph_(graph), out_(out) {
    for (const LineageEdge& edge : graph.edges) {
      out_edges_[edge.from].push_back(&edge);
      in_edges_[edge.to].push_back(&edge);
    }
  }

  void Render() {
    if (graph_.root) {
      const LineageNode root{LineageNode::Type::kArtifact, *graph_.root};
      const ArtifactRow& artifact = graph_.artifacts.at(*graph_.root);
      out_ << Printable(artifact.Ref()) << ArtifactDetails(artifact) << '\n';
      printed_.insert(root);
      if (graph_.direction != LineageDirection::kDownstream) Section(root, /*upstream=*/true);
      if (graph_.direction != LineageDirection::kUpstream) Section(root, /*upstream=*/false);
      return;
    }
    out_ << "run " << Printable(graph_.run_id) << ": "
         << StrCat(RunAttempts(), " attempts, ", graph_.artifacts.size(), " artifacts") << '\n';
    // Sources: this run's nodes that nothing of this run leads to.
    std::vector<LineageNode> roots;
    for (const auto& [id, attempt] : graph_.attempts) {
      if (attempt.run_id == graph_.run_id && IsSource({LineageNode::Type::kAttempt, id})) {
        roots.push_back({LineageNode::Type::kAttempt, id});
      }
    }
    for (const auto& [id, artifact] : graph_.artifacts) {
      if (artifact.run_id == graph_.run_id && IsSource({LineageNode::Type::kArtifact, id})) {
        roots.push_back({LineageNode::Type::kArtifact, id});
      }
    }
    for (const LineageNode& root : roots) Tree(root, /*upstream=*/false, 1, "");
  }

 private:
  size_t RunAttempts() const {
    return static_cast<size_t>(
        std::count_if(graph_.attempts.begin(), graph_.attempts.end(),
                      [&](const auto& entry) { return entry.second.run_id == graph_.run_id; }));
  }

  bool IsSource(const LineageNode& node) const {
    auto in = in_edges_.find(node);
    if (in == in_edges_.end()) return true;
    return std::none_of(in->second.begin(), in->second.end(), [&](const LineageEdge* edge) {
      return RunOf(edge->from) == graph_.run_id;
    });
  }

  const std::string& RunOf(const LineageNode& node) const {
    return node.type == LineageNode::Type::kArtifact ? graph_.artifacts.at(node.id).run_id
                                                     : graph_.attempts.at(node.id).run_id;
  }

  static std::string ArtifactDetails(const ArtifactRow& artifact) {
    return StrCat(" #", artifact.id, "  ", SizeText(artifact), "  ",
                  ShortHash(artifact.content_hash), "  ", CopiesText(artifact.copies));
  }

  std::string Label(const LineageNode& node) const {
    if (node.type == LineageNode::Type::kArtifact) {
      const ArtifactRow& artifact = graph_.artifacts.at(node.id);
      return Printable(ArtifactLabel(artifact, graph_.run_id)) + ArtifactDetails(artifact);
    }
    // Attempts carry no "#ID": that is how artifacts are named.
    const AttemptRow& attempt = graph_.attempts.at(node.id);
    std::string label = AttemptLabel(attempt, graph_.run_id);
    // A run's graph shows no reuse edges of its own (the reused attempt is
    // in another run), so it says here where a cached attempt's outputs
    // came from.
    if (!graph_.root && attempt.cached_from) {
      auto original = graph_.attempts.find(*attempt.cached_from);
      if (original != graph_.attempts.end()) {
        label += StrCat(", reusing ", AttemptLabel(original->second, graph_.run_id));
      }
    }
    return label;
  }

  // The words before a child: how it relates to its parent in the tree.
  static std::string_view Relation(const LineageEdge& edge, bool upstream) {
    switch (edge.kind) {
      case LineageEdge::Kind::kConsumed:
        return upstream ? "consumed " : "consumed by ";
      case LineageEdge::Kind::kProduced:
        return upstream ? "produced by " : "produced ";
      case LineageEdge::Kind::kReused:
        return upstream ? "reused outputs of " : "reused by ";
    }
    return "";
  }

  void Section(const LineageNode& root, bool upstream) {
    out_ << (upstream ? "upstream\n" : "downstream\n");
    const auto& edges = upstream ? in_edges_ : out_edges_;
    if (edges.find(root) == edges.end()) {
      out_ << "  (none)\n";
      return;
    }
    Children(root, upstream, 1);
  }

  // Depth-first with an explicit stack: lineage chains can be long.
  struct Frame {
    LineageNode node;
    size_t level;
    std::string relation;
  };

  void Children(const LineageNode& node, bool upstream, size_t level) {
    std::vector<Frame> stack;
    Push(stack, node, upstream, level);
    Drain(stack, upstream);
  }

  void Tree(const LineageNode& root, bool upstream, size_t level, std::string relation) {
    std::vector<Frame> stack{{root, level - 1, std::move(relation)}};
    Drain(stack, upstream);
  }

  void Push(std::vector<Frame>& stack, const LineageNode& node, bool upstream, size_t level) {
    const auto& edges = upstream ? in_edges_ : out_edges_;
    auto found = edges.find(node);
    if (found == edges.end()) return;
    for (auto edge = found->second.rbegin(); edge != found->second.rend(); ++edge) {
      const LineageNode child = upstream ? (*edge)->from : (*edge)->to;
      stack.push_back({child, level, std::string(Relation(**edge, upstream))});
    }
  }

  void Drain(std::vector<Frame>& stack, bool upstream) {
    while (!stack.empty()) {
      Frame frame = std::move(stack.back());
      stack.pop_back();
      out_ << std::string(2 * frame.level, ' ') << frame.relation << Label(frame.node);
      if (!printed_.insert(frame.node).second) {
        out_ << " (see above)\n";
        continue;
      }
      out_ << '\n';
      Push(stack, frame.node, upstream, frame.level + 1);
    }
  }

  const LineageGraph& graph_;
  std::ostream& out_;
  std::map<LineageNode, std::vector<const LineageEdge*>> out_edges_;
  std::map<LineageNode, std::vector<const LineageEdge*>> in_edges_;
  std::set<LineageNode> printed_;
};

// `text` as the inside of a DOT quoted string: quotes and backslashes
// escaped, a newline as the \n line break, other control characters shown
// as escapes, bytes that are not UTF-8 replaced by U+FFFD (Graphviz wants
// UTF-8). Nothing in it can end the string or start an HTML label.
std::string DotEscape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      if (byte == '"') {
        out += "\\\"";
      } else if (byte == '\\') {
        out += "\\\\";
      } else if (byte == '\n') {
        out += "\\n";
      } else if (byte < 0x20 || byte == 0x7f) {
        out += "\\\\" + CEscape(text.substr(i, 1)).substr(1);
      } else {
        out.push_back(static_cast<char>(byte));
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: lead byte, then 1-3 continuation bytes.
    size_t length = byte >= 0xf0 && byte <= 0xf4 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc2 ? 2 : 0;
    if (byte > 0xf4) length = 0;
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

std::string DotNode(const LineageGraph& graph, const LineageNode& node) {
  std::string attributes;
  if (node.type == LineageNode::Type::kArtifact) {
    const ArtifactRow& artifact = graph.artifacts.at(node.id);
    attributes = StrCat("shape=box, label=\"", DotEscape(ArtifactLabel(artifact, graph.run_id)),
                        "\\n", DotEscape(SizeText(artifact)), " ",
                        DotEscape(ShortHash(artifact.content_hash)), "\"");
    if (graph.root == node.id) attributes += ", penwidth=2";
  } else {
    const AttemptRow& attempt = graph.attempts.at(node.id);
    const std::string run =
        attempt.run_id == graph.run_id ? "" : StrCat(DotEscape(attempt.run_id), "/");
    attributes = StrCat("shape=ellipse, label=\"", run, DotEscape(attempt.task_id), "\\nattempt ",
                        attempt.number, " ", StateWord(attempt.state), "\"");
    using scheduler::AttemptState;
    if (attempt.state == AttemptState::kFailed || attempt.state == AttemptState::kTimedOut ||
        attempt.state == AttemptState::kLost) {
      attributes += ", color=red";
    } else if (attempt.state == AttemptState::kCached) {
      attributes += ", style=dashed";
    } else if (attempt.state == AttemptState::kNotStarted) {
      attributes += ", style=dotted";
    }
  }
  return StrCat("  \"", node.Key(), "\" [", attributes, "];\n");
}

}  // namespace

void RenderLineageText(const LineageGraph& graph, std::ostream& out) {
  LineageText(graph, out).Render();
}

void RenderLineageDot(const LineageGraph& graph, std::ostream& out) {
  const std::string title = graph.root
                                ? StrCat("lineage of ", graph.artifacts.at(*graph.root).Ref())
                                : StrCat("lineage of run ", graph.run_id);
  out << "digraph lineage {\n"
      << "  graph [rankdir=LR, labelloc=t, label=\"" << DotEscape(title) << "\"];\n"
      << "  node [fontname=\"Helvetica\", fontsize=10];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  for (const auto& [id, artifact] : graph.artifacts) {
    out << DotNode(graph, {LineageNode::Type::kArtifact, id});
  }
  for (const auto& [id, attempt] : graph.attempts) {
    out << DotNode(graph, {LineageNode::Type::kAttempt, id});
  }
  for (const LineageEdge& edge : graph.edges) {
    out << "  \"" << edge.from.Key() << "\" -> \"" << edge.to.Key() << "\"";
    if (edge.kind == LineageEdge::Kind::kReused) {
      out << " [style=dashed, label=\"reused\"]";
    } else if (edge.kind == LineageEdge::Kind::kConsumed) {
      out << " [label=\"" << DotEscape(edge.name) << "\"]";
    }
    out << ";\n";
  }
  out << "}\n";
}

}  // namespace tierflow::api
