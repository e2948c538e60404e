// A one-line progress bar on stderr for long CLI runs (bulk enqueue): count, rate and, when
// the input's size is known, percentage and time left. Drawn only when stderr is a terminal,
// at most a few times per second, so it costs nothing when output is piped or logged.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace conveyor::cli {

class progress_bar {
public:
    using clock = std::chrono::steady_clock;

    // enabled: draw at all (normally isatty(stderr)); total_bytes: the input's size, if known.
    progress_bar(bool enabled, std::optional<std::uint64_t> total_bytes);

    // `count` items done, `bytes` of the input consumed. Redraws only when 250 ms passed
    // since the last drawing.
    void update(std::uint64_t count, std::uint64_t bytes);
    // Draws the final state and ends the line (nothing when disabled).
    void finish(std::uint64_t count, std::uint64_t bytes);

    double elapsed_seconds() const;

    // The text of one drawing, without "\r" or terminal codes (for tests and finish()).
    static std::string render(std::uint64_t count, std::uint64_t bytes,
                              std::optional<std::uint64_t> total_bytes, double elapsed_s);

private:
    void draw(std::uint64_t count, std::uint64_t bytes);

    bool enabled_;
    std::optional<std::uint64_t> total_;
    clock::time_point start_;
    clock::time_point last_draw_;
};

// 1234567 -> "1,234,567".
std::string with_thousands(std::uint64_t n);

}  // namespace conveyor::cli
