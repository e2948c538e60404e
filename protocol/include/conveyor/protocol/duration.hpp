// Durations as every flag, config-file key and CLI option of Conveyor writes them: a number
// with a unit, `500ms`, `30s`, `1.5s`, `5m`, `1h`, `2d`. A bare number is in the unit that
// its flag documents (`bare_unit`; docs/commands.md "Durations in flags"). Shared by the
// server and the clients (CLI, worker), so that both accept the same text. Pure: never throws
// on input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::protocol {

// 100 years of 365 days: the range of every duration the broker takes (core::max_duration_ms).
inline constexpr std::int64_t max_duration_ms = 3153600000000;

// What a number without a unit means for a given flag.
enum class bare_unit : std::uint8_t { milliseconds, seconds };

enum class duration_errc : std::uint8_t {
    ok,
    malformed,     // not <digits>[.<digits>][ms|s|m|h|d]
    not_whole_ms,  // a fraction finer than a millisecond ("0.0001s")
    out_of_range,  // more than max_ms
};

struct parsed_duration {
    std::int64_t ms = 0;
    duration_errc error = duration_errc::ok;
};

// `text` in milliseconds. Decimal fractions are exact ("1.5s" is 1500 ms); a value that is not
// a whole number of milliseconds, a sign, spaces or an unknown unit are refused. Accepts 0.
parsed_duration parse_duration(std::string_view text, bare_unit bare,
                               std::int64_t max_ms = max_duration_ms);

// The accepted forms, for usage messages: "500ms, 30s, 5m, 1h, 2d; a bare number is seconds".
std::string duration_forms(bare_unit bare);

// Why `text` was refused ("'10x' is not a duration (500ms, ...)", "... is out of range (max
// 3153600000000 ms)"), to follow the flag's name and a colon. Empty when `parsed` is ok.
std::string duration_error_text(std::string_view text, const parsed_duration& parsed,
                                bare_unit bare, std::int64_t max_ms = max_duration_ms);

}  // namespace conveyor::protocol
