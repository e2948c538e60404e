// Internal to protocol/: the scanning steps the RESP request and reply decoders share
// (strict numbers, bulk bytes consumed as they arrive, the CRLF after a bulk).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
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

// Appends the bulk bytes available in input[pos..] (at most `left`) to `into`, advancing
// `pos` and lowering `left`. Returns true once the whole bulk has arrived. Memory grows only
// with bytes received, never by the declared length.
inline bool take_bulk_bytes(std::string_view input, std::size_t& pos, std::int64_t& left,
                            std::string& into) {
    const std::size_t take = std::min(static_cast<std::size_t>(left), input.size() - pos);
    into.append(input.data() + pos, take);
    pos += take;
    left -= static_cast<std::int64_t>(take);
    return left == 0;
}

enum class crlf_check : std::uint8_t { need_more, ok, bad };

// The two bytes that must follow a bulk's data. A lone CR at the end of the input needs more.
inline crlf_check check_bulk_crlf(std::string_view rest) {
    if (rest.empty() || (rest.size() == 1 && rest[0] == '\r')) return crlf_check::need_more;
    return (rest[0] == '\r' && rest[1] == '\n') ? crlf_check::ok : crlf_check::bad;
}

}  // namespace conveyor::protocol::detail
