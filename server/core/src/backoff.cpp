#include "conveyor/core/backoff.hpp"

namespace conveyor::core {

namespace {

// splitmix64 finaliser: a well-mixed 64-bit value from any input.
std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// FNV-1a: fixed across platforms and library versions, unlike std::hash, so a jitter
// computed before a restart is the same after it.
std::uint64_t fnv1a(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}
}  // namespace

std::int64_t backoff_delay_ms(std::int64_t base_ms, std::int64_t cap_ms, int attempt,
                              std::uint64_t seed, std::string_view task_id) noexcept {
    if (base_ms <= 0 || cap_ms <= 0) return 0;
    const int shift = attempt > 1 ? attempt - 1 : 0;
    std::int64_t delay = cap_ms;
    if (shift < 62 && base_ms <= (cap_ms >> shift)) delay = base_ms << shift;
    const std::int64_t half = delay / 2;
    const std::uint64_t roll =
        mix(seed ^ fnv1a(task_id) ^ mix(static_cast<std::uint64_t>(attempt)));
    return half + static_cast<std::int64_t>(roll % static_cast<std::uint64_t>(delay - half + 1));
}

}  // namespace conveyor::core
