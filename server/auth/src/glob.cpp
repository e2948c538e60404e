#include <conveyor/auth/glob.hpp>

#include <cstdint>
#include <memory>
#include <utility>

namespace conveyor::auth {

namespace {

using byte_set = std::bitset<256>;
using segment = std::vector<byte_set>;
constexpr std::size_t npos = std::string_view::npos;

std::size_t byte_of(char c) {
    return static_cast<unsigned char>(c);
}

// Compiles the class starting at pattern[i] == '['; returns the index just past it.
std::size_t compile_class(std::string_view pattern, std::size_t i, byte_set& set) {
    const std::size_t n = pattern.size();
    ++i;
    bool negate = false;
    if (i < n && pattern[i] == '^') {
        negate = true;
        ++i;
    }
    while (i < n && pattern[i] != ']') {
        if (pattern[i] == '\\' && i + 1 < n) {
            set.set(byte_of(pattern[i + 1]));
            i += 2;
        } else if (i + 2 < n && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
            auto low = byte_of(pattern[i]);
            auto high = byte_of(pattern[i + 2]);
            if (low > high) std::swap(low, high);
            for (auto b = low; b <= high; ++b) set.set(b);
            i += 3;
        } else {
            set.set(byte_of(pattern[i]));
            ++i;
        }
    }
    if (negate) set.flip();
    return i < n ? i + 1 : n;  // skip the ']' (an unterminated class ends with the pattern)
}

bool segment_matches_at(const segment& seg, std::string_view subject, std::size_t at) {
    for (std::size_t j = 0; j < seg.size(); ++j) {
        if (!seg[j].test(byte_of(subject[at + j]))) return false;
    }
    return true;
}

// Leftmost start s, from <= s and s + seg.size() <= limit, where `seg` matches; npos if none.
// Short segments are tried at each start (O(length) per byte, a small constant); longer ones
// run shift-and: bit j of `state` says seg[0..j] matches the bytes ending here.
std::size_t find_segment(const segment& seg, std::string_view subject, std::size_t from,
                         std::size_t limit) {
    const std::size_t length = seg.size();
    if (limit < from || limit - from < length) return npos;
    if (length <= 8) {
        for (std::size_t start = from; start + length <= limit; ++start) {
            if (segment_matches_at(seg, subject, start)) return start;
        }
        return npos;
    }
    const std::size_t words = (length + 63) / 64;
    // masks[b * words ..]: bit j set when seg[j] accepts byte b; filled on first use of b.
    auto masks = std::make_unique_for_overwrite<std::uint64_t[]>(256 * words);
    byte_set filled;
    std::vector<std::uint64_t> state(words, 0);
    const std::uint64_t last_bit = std::uint64_t{1} << ((length - 1) % 64);
    for (std::size_t i = from; i < limit; ++i) {
        const auto b = byte_of(subject[i]);
        std::uint64_t* mask = &masks[b * words];
        if (!filled.test(b)) {
            for (std::size_t w = 0; w < words; ++w) mask[w] = 0;
            for (std::size_t j = 0; j < length; ++j) {
                if (seg[j].test(b)) mask[j / 64] |= std::uint64_t{1} << (j % 64);
            }
            filled.set(b);
        }
        std::uint64_t carry = 1;  // a match may start at every byte
        for (std::size_t w = 0; w < words; ++w) {
            const std::uint64_t next_carry = state[w] >> 63;
            state[w] = ((state[w] << 1) | carry) & mask[w];
            carry = next_carry;
        }
        if (state[words - 1] & last_bit) return i + 1 - length;
    }
    return npos;
}

}  // namespace

glob_pattern::glob_pattern(std::string_view pattern) : text_(pattern) {
    segments_.emplace_back();
    const std::size_t n = pattern.size();
    std::size_t i = 0;
    while (i < n) {
        const char c = pattern[i];
        if (c == '*') {
            while (i < n && pattern[i] == '*') ++i;  // a run of stars is one star
            segments_.emplace_back();
            continue;
        }
        byte_set set;
        if (c == '?') {
            set.set();
            ++i;
        } else if (c == '[') {
            i = compile_class(pattern, i, set);
        } else if (c == '\\' && i + 1 < n) {
            set.set(byte_of(pattern[i + 1]));
            i += 2;
        } else {
            set.set(byte_of(c));
            ++i;
        }
        segments_.back().push_back(set);
        ++fixed_length_;
    }
}

bool glob_pattern::matches(std::string_view subject) const {
    const segment& first = segments_.front();
    if (segments_.size() == 1) {
        return subject.size() == first.size() && segment_matches_at(first, subject, 0);
    }
    if (subject.size() < fixed_length_) return false;
    const segment& last = segments_.back();
    const std::size_t tail = subject.size() - last.size();
    if (!segment_matches_at(first, subject, 0) || !segment_matches_at(last, subject, tail)) {
        return false;
    }
    // Between the anchored ends, each star-free segment goes at its leftmost place: any
    // later place leaves less room for the segments after it, never more.
    std::size_t at = first.size();
    for (std::size_t k = 1; k + 1 < segments_.size(); ++k) {
        const segment& seg = segments_[k];
        if (seg.empty()) continue;
        const std::size_t start = find_segment(seg, subject, at, tail);
        if (start == npos) return false;
        at = start + seg.size();
    }
    return true;
}

bool glob_match(std::string_view pattern, std::string_view subject) {
    return glob_pattern(pattern).matches(subject);
}

}  // namespace conveyor::auth
