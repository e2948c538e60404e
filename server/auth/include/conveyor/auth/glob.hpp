// Redis-style glob patterns for queue names in permission rules.
//
//   *        any run of bytes, also none        ?        exactly one byte
//   [abc]    one of a, b, c                     [a-z]    one byte in the range (either order)
//   [^abc]   one byte not listed                \x       the byte x itself (also inside [])
//
// As in Redis: matching is byte-wise and case-sensitive; an unterminated `[` runs to the end of
// the pattern; a trailing lone `\` matches a backslash. Unlike Redis, a `-` right before the
// closing `]` (`[a-]`) is a literal dash, not a range up to `]`.
//
// Time: no backtracking. The pattern is compiled into star-free segments, each a fixed run of
// one-byte matchers; the segments between stars are found leftmost-first in one pass over the
// subject (greedy leftmost is optimal when `*` is the only variable-length token), each
// search bit-parallel (shift-and), so matching costs O(|pattern| + |subject| * ceil(s / 64))
// with s the longest star-free segment: `*?` repeated 50,000 times against 50,000 bytes is
// linear. Redis's recursive matcher needs a nesting limit to survive that input.
#pragma once

#include <bitset>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::auth {

class glob_pattern {
public:
    explicit glob_pattern(std::string_view pattern);

    bool matches(std::string_view subject) const;
    // True when the pattern is nothing but stars: it matches every queue name.
    bool matches_everything() const { return segments_.size() > 1 && fixed_length_ == 0; }
    const std::string& text() const { return text_; }

private:
    using byte_set = std::bitset<256>;
    using segment = std::vector<byte_set>;  // matches exactly segment.size() bytes

    std::string text_;
    std::vector<segment> segments_;  // stars + 1 of them; the first and last are anchored
    std::size_t fixed_length_ = 0;   // sum of the segment lengths
};

// One-shot form; compile a glob_pattern to match the same pattern repeatedly.
bool glob_match(std::string_view pattern, std::string_view subject);

}  // namespace conveyor::auth
