// Splits a fuzz input into chunks at points derived from the input itself, so that a decoder
// can be fed the same bytes whole and in pieces, deterministically per input (a crash found
// in pieces replays from the saved input alone).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace conveyor::fuzz {

// One to eight chunks, empty ones included (a decoder must accept an empty feed). The split
// points come from a small generator seeded by the first and last bytes and the size.
inline std::vector<std::string_view> split_at_random_points(std::string_view input) {
    std::uint64_t state = input.size() * 0x9e3779b97f4a7c15ull;
    if (!input.empty()) {
        state ^= static_cast<unsigned char>(input.front()) * 0x100000001b3ull;
        state ^= static_cast<std::uint64_t>(static_cast<unsigned char>(input.back())) << 40;
    }
    auto next = [&state] {  // splitmix64
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    std::vector<std::size_t> points;
    const std::size_t splits = next() % 8;
    for (std::size_t i = 0; i < splits; ++i) points.push_back(next() % (input.size() + 1));
    std::sort(points.begin(), points.end());
    std::vector<std::string_view> chunks;
    std::size_t from = 0;
    for (const std::size_t p : points) {
        chunks.push_back(input.substr(from, p - from));
        from = p;
    }
    chunks.push_back(input.substr(from));
    return chunks;
}

}  // namespace conveyor::fuzz
