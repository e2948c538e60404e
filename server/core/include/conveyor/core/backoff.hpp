// Retry backoff, a pure function so it is tested apart from the broker and the same in a
// replay: exponential, capped, with "equal jitter" (half fixed, half random) so a burst of
// tasks failing together does not come back together.
#pragma once

#include <cstdint>
#include <string_view>

namespace conveyor::core {

// Delay before the retry that follows failed attempt `attempt` (1-based):
//   d = min(cap_ms, base_ms * 2^(attempt-1)), result in [d/2, d].
// The random half depends only on (seed, task id, attempt). Negative inputs count as 0.
std::int64_t backoff_delay_ms(std::int64_t base_ms, std::int64_t cap_ms, int attempt,
                              std::uint64_t seed, std::string_view task_id) noexcept;

}  // namespace conveyor::core
