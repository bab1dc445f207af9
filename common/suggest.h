// "Did you mean" suggestions for misspelt keys and names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tierflow {

// Edit distance where inserting, deleting or substituting a character, or
// swapping two adjacent ones, each cost 1 (optimal string alignment: the
// Damerau-Levenshtein distance without editing a substring twice). A swap,
// the commonest typo ('trian' for 'train'), is one edit, not two.
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a plausible
// typo (distance at most a third of the word's length, and at least 1);
// ties go to the earliest candidate.
std::optional<std::string> ClosestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — ready to append to a message.
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace tierflow
