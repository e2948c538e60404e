// Text helpers shared by the CLI and the worker: UTF-8 validation and base64, for carrying
// arbitrary task bytes (payloads, results, errors) through JSON and terminals.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conveyor::client {

// Length of the valid UTF-8 sequence at the start of `s` (1..4), or 0 when it is not one
// (overlong forms, UTF-16 surrogates and code points above U+10FFFF are not valid).
std::size_t utf8_sequence_length(std::string_view s) noexcept;
bool is_valid_utf8(std::string_view bytes) noexcept;
// RFC 4648 base64 with padding.
std::string base64_encode(std::string_view bytes);

}  // namespace conveyor::client
