#include <conveyor/runtime/log_limiter.hpp>

#include <conveyor/runtime/log_text.hpp>

namespace conveyor::server {

log_limiter::decision log_limiter::admit(std::string_view key, clock::time_point now) {
    auto it = windows_.find(std::string(key));
    if (it == windows_.end()) {
        if (windows_.size() >= options_.max_keys) expire(now);
        // Still full: many hosts at once. Their lines go through unlimited per host; the
        // global bound is the caller's (connections are limited by --max-clients).
        if (windows_.size() >= options_.max_keys) return {true, 0};
        windows_.emplace(std::string(key), window{now, 1, 0});
        return {true, 0};
    }
    window& w = it->second;
    if (now - w.start >= options_.window) {
        const std::uint64_t earlier = w.suppressed;
        w = window{now, 1, 0};
        return {true, earlier};
    }
    if (w.written < options_.lines) {
        ++w.written;
        return {true, 0};
    }
    ++w.suppressed;
    return {false, 0};
}

std::vector<log_limiter::summary> log_limiter::expire(clock::time_point now) {
    std::vector<summary> out;
    for (auto it = windows_.begin(); it != windows_.end();) {
        if (now - it->second.start < options_.window) {
            ++it;
            continue;
        }
        if (it->second.suppressed > 0) out.push_back({it->first, it->second.suppressed});
        it = windows_.erase(it);
    }
    return out;
}

namespace {

std::mutex client_log_mu;
log_limiter& client_limiter() {
    static log_limiter limiter;
    return limiter;
}

void report(std::string_view host, std::uint64_t suppressed) {
    spdlog::warn(
        "{} more log line(s) caused by clients of {} were suppressed (at most {} per {} "
        "s per host)",
        suppressed, log_text(host), log_limiter::options{}.lines,
        std::chrono::duration_cast<std::chrono::seconds>(log_limiter::options{}.window).count());
}

}  // namespace

log_limiter::decision admit_client_line(std::string_view peer) {
    const std::string_view host = peer_host(peer);
    log_limiter::decision d;
    {
        std::lock_guard lk(client_log_mu);
        d = client_limiter().admit(host, log_limiter::clock::now());
    }
    if (d.suppressed > 0) report(host, d.suppressed);
    return d;
}

void flush_client_log() {
    std::vector<log_limiter::summary> ended;
    {
        std::lock_guard lk(client_log_mu);
        ended = client_limiter().expire(log_limiter::clock::now());
    }
    for (const auto& s : ended) report(s.key, s.suppressed);
}

}  // namespace conveyor::server
