#include <conveyor/protocol/duration.hpp>

#include <array>
#include <utility>

namespace conveyor::protocol {
namespace {

constexpr std::array<std::pair<std::string_view, std::int64_t>, 5> units{{
    {"ms", 1},
    {"s", 1000},
    {"m", 60'000},
    {"h", 3'600'000},
    {"d", 86'400'000},
}};

// Milliseconds per unit; 0 for a unit that is not one.
std::int64_t unit_scale(std::string_view unit, bare_unit bare) {
    if (unit.empty()) return bare == bare_unit::seconds ? 1000 : 1;
    for (const auto& [name, scale] : units)
        if (unit == name) return scale;
    return 0;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The leading digits of `text` as a number: -1 when there are none, -2 when there are more
// than 18 (which could overflow, and is past any range anyway).
std::int64_t leading_number(std::string_view text, std::size_t& digits) {
    digits = 0;
    std::int64_t n = 0;
    while (digits < text.size() && is_digit(text[digits])) {
        if (digits == 18) return -2;
        n = n * 10 + (text[digits] - '0');
        ++digits;
    }
    return digits == 0 ? -1 : n;
}

}  // namespace

parsed_duration parse_duration(std::string_view text, bare_unit bare, std::int64_t max_ms) {
    std::size_t int_digits = 0;
    const std::int64_t whole = leading_number(text, int_digits);
    if (whole == -2) return {0, duration_errc::out_of_range};
    if (whole < 0) return {0, duration_errc::malformed};
    std::string_view rest = text.substr(int_digits);
    std::int64_t fraction = 0;
    std::int64_t fraction_scale = 1;  // 10^(digits of the fraction)
    if (!rest.empty() && rest[0] == '.') {
        std::size_t frac_digits = 0;
        fraction = leading_number(rest.substr(1), frac_digits);
        if (fraction < 0 || frac_digits > 9) return {0, duration_errc::malformed};
        for (std::size_t i = 0; i < frac_digits; ++i) fraction_scale *= 10;
        rest = rest.substr(1 + frac_digits);
    }
    const std::int64_t scale = unit_scale(rest, bare);
    if (scale == 0) return {0, duration_errc::malformed};
    if (whole > max_ms / scale) return {0, duration_errc::out_of_range};
    // fraction < 10^9 and scale <= 8.64e7: the product fits in 64 bits.
    const std::int64_t fraction_ms_scaled = fraction * scale;
    if (fraction_ms_scaled % fraction_scale != 0) return {0, duration_errc::not_whole_ms};
    const std::int64_t ms = whole * scale + fraction_ms_scaled / fraction_scale;
    if (ms > max_ms) return {0, duration_errc::out_of_range};
    return {ms, duration_errc::ok};
}

std::string duration_forms(bare_unit bare) {
    return std::string("500ms, 30s, 1.5s, 5m, 1h, 2d; a bare number is ") +
           (bare == bare_unit::seconds ? "seconds" : "milliseconds");
}

std::string duration_error_text(std::string_view text, const parsed_duration& parsed,
                                bare_unit bare, std::int64_t max_ms) {
    std::string quoted(1, '\'');
    quoted.append(text);
    quoted.push_back('\'');
    switch (parsed.error) {
        case duration_errc::ok:
            return {};
        case duration_errc::malformed:
            return quoted + " is not a duration (" + duration_forms(bare) + ")";
        case duration_errc::not_whole_ms:
            return quoted + " is not a whole number of milliseconds";
        case duration_errc::out_of_range:
            break;
    }
    return quoted + " is out of range (max " + std::to_string(max_ms) + " ms)";
}

}  // namespace conveyor::protocol
