// The parts of parse_server_args (config.cpp): the config file reader and the checks of the
// parsed values. Internal to server/runtime.
#pragma once

#include <conveyor/runtime/config.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::server::config_detail {

// One `name value` line of a config file.
struct file_setting {
    std::string name;
    std::string value;
    int line = 0;
};

// The lines of `path`, or a message naming the file (and the line, for a line that is not
// `name value`).
struct file_read {
    std::vector<file_setting> settings;
    std::optional<std::string> error;
};
file_read read_config_file(const std::string& path);

// The names among `known` that `typed` is probably a misspelling of: one or two edits away
// (a swap of two letters counts as one), or those it is the start of ("data" for "data-dir").
// Closest first; empty when none is close.
std::vector<std::string> close_names(std::string_view typed, const std::vector<std::string>& known);

// " (did you mean 'a' or 'b'?)" with `prefix` before each name ("--" for flags); "" for none.
std::string did_you_mean(const std::vector<std::string>& names, std::string_view prefix);

// The durations as written (protocol/duration.hpp); parse_server_args binds the flags to
// them and check_settings parses them into server_config.
struct duration_texts {
    std::string default_lease = "30000";
    std::string result_ttl = "86400000";
    std::string amqp_consumer_timeout = "1800000";
    std::string tcp_keepalive = "300";
    std::string amqp_heartbeat = "60";
};

// Where each setting taken from the config file was written ("conveyor.conf:12"), so that an
// error about its value names the line rather than a flag.
using setting_origins = std::map<std::string, std::string, std::less<>>;

// Checks the parsed settings and fills the fields derived from them (milliseconds, enums).
// The message of the first problem, naming the flag or the file and line it came from.
std::optional<std::string> check_settings(server_config& config, const duration_texts& texts,
                                          const setting_origins& origins);

}  // namespace conveyor::server::config_detail
