// The --pipe line protocol (docs/worker.md, "Handlers"), pure: no processes, no I/O.
//
//   worker -> handler  {"id","name","queue","payload","attempt","timeout_ms"}\n
//                      (+ "payload_encoding":"base64" when the payload is not valid UTF-8)
//                      {"cancel":"<id>"}\n
//   handler -> worker  {"id","ok":true,"result":...}\n
//                      {"id","ok":false,"error":"...","retry":true|false}\n
#pragma once

#include <conveyor/client/worker_types.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace conveyor::worker::detail {

// The longest reply line the worker reads (a result of up to the broker's payload limit, JSON
// escaped, fits). A longer line is a protocol error: the handler is replaced.
constexpr std::size_t max_reply_line = 16 * 1024 * 1024;

// One request line, '\n' included.
std::string encode_request(const client::task_context& ctx);
// One cancel line, '\n' included.
std::string encode_cancel(std::string_view id);

struct protocol_error {
    std::string message;  // a sentence for the task's error text and the log
};
// A reply line (without its '\n') to the task `expected_id`: the task's outcome, or why the
// line breaks the protocol.
std::variant<client::handler_result, protocol_error> parse_reply(std::string_view line,
                                                                 std::string_view expected_id);

}  // namespace conveyor::worker::detail
