#include "progress_bar.hpp"

#include <algorithm>
#include <cstdio>

namespace conveyor::cli {

namespace {
constexpr auto redraw_interval = std::chrono::milliseconds(250);
constexpr int bar_width = 30;
}  // namespace

std::string with_thousands(std::uint64_t n) {
    std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

progress_bar::progress_bar(bool enabled, std::optional<std::uint64_t> total_bytes)
    : enabled_(enabled), total_(total_bytes), start_(clock::now()), last_draw_(start_) {
    if (enabled_) draw(0, 0);
}

double progress_bar::elapsed_seconds() const {
    return std::chrono::duration<double>(clock::now() - start_).count();
}

void progress_bar::update(std::uint64_t count, std::uint64_t bytes) {
    if (!enabled_ || clock::now() - last_draw_ < redraw_interval) return;
    draw(count, bytes);
}

void progress_bar::finish(std::uint64_t count, std::uint64_t bytes) {
    if (!enabled_) return;
    draw(count, bytes);
    std::fputs("\n", stderr);
}

void progress_bar::draw(std::uint64_t count, std::uint64_t bytes) {
    last_draw_ = clock::now();
    // "\r" back to the line's start, "\033[K" clears what a longer earlier drawing left.
    std::string line = "\r";
    line += render(count, bytes, total_, elapsed_seconds());
    line += "\033[K";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

std::string progress_bar::render(std::uint64_t count, std::uint64_t bytes,
                                 std::optional<std::uint64_t> total_bytes, double elapsed_s) {
    std::string out;
    const auto rate = elapsed_s > 0 ? static_cast<std::uint64_t>(double(count) / elapsed_s) : 0;
    if (total_bytes) {
        double done = *total_bytes == 0 ? 1.0 : std::min(1.0, double(bytes) / double(*total_bytes));
        int filled = static_cast<int>(done * bar_width);
        out += '[';
        out.append(static_cast<std::size_t>(filled), '#');
        out.append(static_cast<std::size_t>(bar_width - filled), '-');
        char percent[16];
        std::snprintf(percent, sizeof percent, "] %3d%%  ", static_cast<int>(done * 100));
        out += percent;
    }
    out += with_thousands(count) + " tasks  " + with_thousands(rate) + "/s";
    if (total_bytes && bytes > 0 && bytes < *total_bytes) {
        double left_s = elapsed_s * double(*total_bytes - bytes) / double(bytes);
        out += "  " + std::to_string(static_cast<std::uint64_t>(left_s + 0.5)) + "s left";
    }
    return out;
}

}  // namespace conveyor::cli
