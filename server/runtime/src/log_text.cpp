#include <conveyor/runtime/log_text.hpp>

#include <algorithm>
#include <cstdint>

namespace conveyor::server {
namespace {

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms,
// no surrogates, nothing past U+10FFFF), and its code point; 0 when it is not one.
std::size_t utf8_sequence(std::string_view s, std::uint32_t& code_point) noexcept {
    const auto b0 = static_cast<unsigned char>(s[0]);
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if (b0 < 0x80) {
        code_point = b0;
        return 1;
    } else if ((b0 & 0xE0) == 0xC0) {
        len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (s.size() < len) return 0;
    for (std::size_t i = 1; i < len; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if ((b & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    code_point = cp;
    return len;
}

// Code points that change how a terminal or a log viewer shows what follows.
bool shown_escaped(std::uint32_t cp) noexcept {
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) ||           // C0, DEL, C1
           cp == 0x2028 || cp == 0x2029 ||                                    // line/paragraph sep.
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);  // bidi
}

void append_escaped(std::string& out, std::string_view bytes) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += "\\x";
        out += hex[b >> 4];
        out += hex[b & 0xF];
    }
}

}  // namespace

std::string log_text(std::string_view text, std::size_t max_bytes) {
    std::string out;
    out.reserve(std::min(text.size(), max_bytes) + 16);
    std::size_t i = 0;
    while (i < text.size()) {
        std::uint32_t cp = 0;
        std::size_t len = utf8_sequence(text.substr(i), cp);
        const std::size_t take = len == 0 ? 1 : len;
        if (i + take > max_bytes) break;
        const std::string_view piece = text.substr(i, take);
        if (len == 0 || shown_escaped(cp)) {
            append_escaped(out, piece);
        } else if (cp == '\\') {
            out += "\\\\";
        } else {
            out += piece;
        }
        i += take;
    }
    if (i < text.size()) {
        out += "...(";
        out += std::to_string(text.size() - i);
        out += " more bytes)";
    }
    return out;
}

std::string_view peer_host(std::string_view peer) noexcept {
    const auto colon = peer.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == peer.size()) return peer;
    for (std::size_t i = colon + 1; i < peer.size(); ++i) {
        if (peer[i] < '0' || peer[i] > '9') return peer;
    }
    return peer.substr(0, colon);
}

}  // namespace conveyor::server
