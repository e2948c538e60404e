#include "cli_text.hpp"

#include <conveyor/client/text.hpp>

#include <cstdint>

namespace conveyor::cli {

namespace {

void append_hex_escape(std::string& out, std::uint8_t b) {
    static constexpr char hex[] = "0123456789abcdef";
    out += "\\x";
    out += hex[b >> 4];
    out += hex[b & 0xF];
}

}  // namespace

std::string escape_for_line(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t i = 0; i < bytes.size();) {
        auto b = static_cast<std::uint8_t>(bytes[i]);
        std::size_t n = client::utf8_sequence_length(bytes.substr(i));
        if (n > 1) {
            out.append(bytes.substr(i, n));
            i += n;
            continue;
        }
        ++i;
        if (b == '\\')
            out += "\\\\";
        else if (b == '\n')
            out += "\\n";
        else if (b == '\r')
            out += "\\r";
        else if (b == '\t')
            out += "\\t";
        else if (n == 0 || b < 0x20 || b == 0x7F)
            append_hex_escape(out, b);
        else
            out += static_cast<char>(b);
    }
    return out;
}

}  // namespace conveyor::cli
