// Text from clients made safe for the server log (docs/users.md, "What the log shows of
// clients"). A user name, a queue name or a reason a client sent may hold CR/LF (a forged log
// line), terminal escape codes or bytes that are not UTF-8; the log must show them, not obey
// them. Pure functions, no logging.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conveyor::server {

// Longest part of one client-provided value that a log line shows.
inline constexpr std::size_t log_text_max_bytes = 256;

// `text` as one printable line: control bytes (0x00-0x1F, 0x7F), C1 controls (U+0080-U+009F),
// the Unicode line and paragraph separators and bidirectional overrides, and every byte that is
// not part of well-formed UTF-8 are written as \xNN (each byte of them); a backslash as \\.
// Other UTF-8 is kept. Past `max_bytes` of input the rest is cut (never inside a character)
// and "...(N more bytes)" says how much.
std::string log_text(std::string_view text, std::size_t max_bytes = log_text_max_bytes);

// The address part of a peer as sessions describe it ("127.0.0.1:50412" -> "127.0.0.1",
// "::1:50412" -> "::1"): the key for limits per client host. Unchanged without a port.
std::string_view peer_host(std::string_view peer) noexcept;

}  // namespace conveyor::server
