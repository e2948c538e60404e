#include <conveyor/client/text.hpp>

#include <cstdint>

namespace conveyor::client {

std::size_t utf8_sequence_length(std::string_view s) noexcept {
    auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(s[i]); };
    std::uint8_t b0 = byte(0);
    if (b0 < 0x80) return 1;
    // The lead byte gives the length and the top bits of the code point.
    std::size_t n = 0;
    if ((b0 & 0xE0) == 0xC0)
        n = 2;
    else if ((b0 & 0xF0) == 0xE0)
        n = 3;
    else if ((b0 & 0xF8) == 0xF0)
        n = 4;
    else
        return 0;
    std::uint32_t cp = b0 & (0x7Fu >> n);
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((byte(i) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (byte(i) & 0x3F);
    }
    static constexpr std::uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_length[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

bool is_valid_utf8(std::string_view bytes) noexcept {
    for (std::size_t i = 0; i < bytes.size();) {
        std::size_t n = utf8_sequence_length(bytes.substr(i));
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        std::uint32_t v = std::uint32_t(std::uint8_t(bytes[i])) << 16 |
                          std::uint32_t(std::uint8_t(bytes[i + 1])) << 8 |
                          std::uint8_t(bytes[i + 2]);
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (std::size_t rest = bytes.size() - i; rest != 0) {
        std::uint32_t v = std::uint32_t(std::uint8_t(bytes[i])) << 16;
        if (rest == 2) v |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

}  // namespace conveyor::client
