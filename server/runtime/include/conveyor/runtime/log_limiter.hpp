// A bound on log lines that clients can cause (docs/limits.md, "Log lines caused by clients"):
// a failed AUTH, a refused connection or a protocol error costs the client little and the log a
// line each, so one connection could write hundreds of lines a second. Each key (a client's
// host) may write `lines` lines per `window`; the lines past that are counted, and the count is
// reported once the window is over. Time is an argument: the class never reads a clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace conveyor::server {

class log_limiter {
public:
    using clock = std::chrono::steady_clock;
    struct options {
        std::size_t lines = 10;  // per key and window
        clock::duration window = std::chrono::seconds(5);
        std::size_t max_keys = 10000;  // a flood of hosts: windows are dropped
    };
    struct decision {
        bool write = false;            // this line may be logged
        std::uint64_t suppressed = 0;  // lines of this key suppressed in its previous window
    };
    struct summary {
        std::string key;
        std::uint64_t suppressed = 0;
    };

    log_limiter() : log_limiter(options{}) {}
    explicit log_limiter(options o) : options_(o) {}

    // Whether a line about `key` may be written at `now`. A line that starts a new window
    // carries the count of the lines the previous window suppressed (not yet reported by
    // expire()), to report with it.
    decision admit(std::string_view key, clock::time_point now);
    // Ends the windows that are over at `now`: the keys that had lines suppressed, with their
    // counts (each reported once). Called periodically, so a count is reported even when the
    // client stops.
    std::vector<summary> expire(clock::time_point now);
    std::size_t keys() const noexcept { return windows_.size(); }

private:
    struct window {
        clock::time_point start;
        std::size_t written = 0;
        std::uint64_t suppressed = 0;
    };
    options options_;
    std::unordered_map<std::string, window> windows_;
};

// The server's limiter for lines caused by clients, keyed by the client's host (peer_host).
// Thread-safe. client_log() logs a line through it; flush_client_log() writes the summaries
// of ended windows ("N lines ... suppressed") and is called once a second.
log_limiter::decision admit_client_line(std::string_view peer);
void flush_client_log();

template <class... Args>
void client_log(spdlog::level::level_enum level, std::string_view peer,
                spdlog::format_string_t<Args...> format, Args&&... args) {
    if (!spdlog::should_log(level)) return;
    const auto d = admit_client_line(peer);
    if (!d.write) return;
    spdlog::log(level, format, std::forward<Args>(args)...);
}

}  // namespace conveyor::server
