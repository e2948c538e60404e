// Internal to protocol/: the strict integer parser shared by the RESP decoders.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace conveyor::protocol::detail {

// Parses a RESP number strictly, as Redis's string2ll does: "0", or an optional '-' followed
// by digits without a leading zero. No '+', no spaces, nothing that overflows an int64.
inline std::optional<std::int64_t> parse_int64(std::string_view text) {
    if (text == "0") {
        return 0;
    }
    const bool negative = !text.empty() && text.front() == '-';
    if (negative) {
        text.remove_prefix(1);
    }
    if (text.empty() || text.front() < '1' || text.front() > '9') {
        return std::nullopt;
    }
    // The magnitude of INT64_MIN is one more than INT64_MAX.
    const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
    std::uint64_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (limit - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    // Two's complement negation in unsigned arithmetic; the conversion is modular in C++20.
    return static_cast<std::int64_t>(negative ? ~value + 1 : value);
}

}  // namespace conveyor::protocol::detail
