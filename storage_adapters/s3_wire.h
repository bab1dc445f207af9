// What the s3 adapter (s3*.cc) reads from and writes into S3's replies and
// requests: the XML of its listings, errors and multipart requests, its
// dates and its ETags. Pure functions of their arguments, thread-safe; an
// internal header, used only by the s3 adapter and its tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tierflow::storage::s3_internal {

std::string LowerAscii(std::string_view text);

// XML text with its five named entities and numeric character references
// decoded; anything else is left as it is.
std::string XmlDecode(std::string_view text);

// The raw contents of each <tag>...</tag> in `xml`, in order. The replies we
// read are flat lists of simple elements, so a scan for the tag's exact
// opening and closing text is enough; nothing here recurses or allocates
// beyond the views it returns.
std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag);

// The decoded text of the first <tag> in `xml`, if there is one.
std::optional<std::string> XmlText(std::string_view xml, std::string_view tag);

std::string XmlEscape(std::string_view text);

// ms since the Unix epoch of "Wed, 12 Oct 2009 17:50:00 GMT" (HTTP dates)
// or "2009-10-12T17:50:00.000Z" (S3 listings); 0 when unparsable.
int64_t ParseTimeMs(std::string_view text, bool iso8601);

// An ETag without its quotes, lower-case.
std::string BareEtag(std::string_view etag);

}  // namespace tierflow::storage::s3_internal
