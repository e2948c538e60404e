// Which bytes a queue name may hold (docs/commands.md, "Queue names"): 1 to 255 bytes, none of
// them a control byte (0x00-0x1F, 0x7F). 255 is what an AMQP queue name (a shortstr) can hold,
// so every queue is reachable from both protocols; without control bytes a name cannot break
// the lines of INFO, the log or a terminal. Other bytes (UTF-8 or not, spaces, ':') are
// allowed. Checked where a client names a queue: the RESP command table (commands.cpp) and
// AMQP queue.declare (amqp_topology.cpp). Pure, no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace conveyor::server {

inline constexpr std::size_t max_queue_name_bytes = 255;

// What is wrong with `name` as a sentence ("queue name is longer than 255 bytes ..."), or
// nullopt when it is a valid queue name.
std::optional<std::string_view> queue_name_problem(std::string_view name) noexcept;

}  // namespace conveyor::server
