#include "common/suggest.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace tierflow {

size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rows of the distance table, for i - 2, i - 1 and i, in one block.
  const size_t width = b.size() + 1;
  std::vector<size_t> rows(3 * width);
  size_t* before = rows.data();
  size_t* above = before + width;
  size_t* row = above + width;
  std::iota(above, above + width, size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      row[j] =
          std::min({above[j] + 1, row[j - 1] + 1, above[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      // Two adjacent letters swapped ('trian' for 'train') are one edit.
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        row[j] = std::min(row[j], before[j - 2] + 1);
      }
    }
    // Rotate: row i - 1 becomes i - 2, row i becomes i - 1.
    std::swap(before, above);
    std::swap(above, row);
  }
  return above[b.size()];
}

std::optional<std::string> ClosestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(1, word.size() / 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    // Lengths that differ by more than the limit cannot be within it.
    size_t gap = candidate.size() > word.size() ? candidate.size() - word.size()
                                                : word.size() - candidate.size();
    if (gap > limit) continue;
    size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  auto match = ClosestMatch(word, candidates);
  return match ? " (did you mean '" + *match + "'?)" : "";
}

}  // namespace tierflow
