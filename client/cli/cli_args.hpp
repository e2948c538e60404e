// Command-line parsing for the client subcommands: a small hand parser, because the forms
// are simple and one option (--backoff <base-ms> <max-ms>) takes two values, which
// Boost.Program_options would read greedily into the positionals behind it.
//
// Rules: `--name value`, `--name=value` (one-valued options), `--flag`; `--` ends the options
// (so a payload may start with "--"); `-` alone and any other token are positional; `-h` is
// `--help`. A repeated option keeps its last value. Every mistake throws usage_error, which
// cli_main reports with exit status 2.
#pragma once

#include <conveyor/protocol/duration.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::cli {

// A command line that cannot be run as given: exit status 2.
class usage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct option_spec {
    std::string_view name;  // without the leading "--"
    int values = 0;         // 0: a flag
};

class parsed_args {
public:
    std::vector<std::string> positional;

    bool has(std::string_view name) const { return values_.count(std::string(name)) != 0; }
    // The value of a one-valued option, if given.
    std::optional<std::string> get(std::string_view name) const;
    // All values of a multi-valued option (empty when absent).
    const std::vector<std::string>& get_all(std::string_view name) const;

    void set(std::string_view name, std::vector<std::string> values) {
        values_[std::string(name)] = std::move(values);
    }

private:
    std::map<std::string, std::vector<std::string>> values_;
};

// Throws usage_error naming an unknown option or a missing value.
parsed_args parse_args(const std::vector<std::string>& args, std::span<const option_spec> specs);

// "250", "250ms", "1.5s", "2m", "1h", "1d" -> milliseconds (protocol/duration.hpp); a bare
// number is milliseconds, as on the wire, unless `bare` says seconds (--connect-timeout).
// Throws usage_error("--<option>: ...") when `text` is not a duration of 0 to 100 years.
std::int64_t parse_duration_ms(std::string_view option, std::string_view text,
                               protocol::bare_unit bare = protocol::bare_unit::milliseconds);
// A decimal integer in [min, max]; throws usage_error("--<option>: ...") otherwise.
std::int64_t parse_integer(std::string_view option, std::string_view text, std::int64_t min,
                           std::int64_t max);

}  // namespace conveyor::cli
