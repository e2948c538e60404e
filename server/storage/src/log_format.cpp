#include "conveyor/storage/log_format.hpp"

#include "conveyor/storage/crc32c.hpp"

#include <cstdio>

namespace conveyor::storage {

std::uint32_t load_le32(const char* p) noexcept {
    const auto* b = reinterpret_cast<const unsigned char*>(p);
    return static_cast<std::uint32_t>(b[0]) | static_cast<std::uint32_t>(b[1]) << 8 |
           static_cast<std::uint32_t>(b[2]) << 16 | static_cast<std::uint32_t>(b[3]) << 24;
}

std::uint64_t load_le64(const char* p) noexcept {
    return static_cast<std::uint64_t>(load_le32(p)) | static_cast<std::uint64_t>(load_le32(p + 4))
                                                          << 32;
}

void store_le32(std::uint32_t v, char* p) noexcept {
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    }
}

void append_le32(std::uint32_t v, std::string& out) {
    char bytes[4];
    store_le32(v, bytes);
    out.append(bytes, 4);
}

void append_le64(std::uint64_t v, std::string& out) {
    append_le32(static_cast<std::uint32_t>(v), out);
    append_le32(static_cast<std::uint32_t>(v >> 32), out);
}

void append_segment_header(std::uint64_t sequence, std::string& out) {
    const std::size_t start = out.size();
    out.append(segment_magic);
    append_le32(format_version, out);
    append_le64(sequence, out);
    append_le32(crc32c(std::string_view(out).substr(start, 20)), out);
}

segment_header parse_segment_header(std::string_view file) noexcept {
    segment_header h;
    if (file.size() < segment_header_size) {
        h.error = header_error::truncated;
    } else if (file.substr(0, 8) != segment_magic) {
        h.error = header_error::bad_magic;
    } else if (crc32c(file.substr(0, 20)) != load_le32(file.data() + 20)) {
        h.error = header_error::bad_crc;
    } else {
        h.version = load_le32(file.data() + 8);
        h.sequence = load_le64(file.data() + 12);
        if (h.version != format_version) h.error = header_error::bad_version;
    }
    return h;
}

std::string_view to_string(header_error e) noexcept {
    switch (e) {
        case header_error::none:
            return "ok";
        case header_error::truncated:
            return "segment header truncated";
        case header_error::bad_magic:
            return "not a conveyor log segment (bad magic)";
        case header_error::bad_version:
            return "unsupported log format version";
        case header_error::bad_crc:
            return "segment header checksum mismatch";
    }
    return "unknown header error";
}

void append_frame(std::string_view payload, std::string& out) {
    append_le32(static_cast<std::uint32_t>(payload.size()), out);
    append_le32(crc32c(payload), out);
    out.append(payload);
}

frame_header read_frame_header(std::string_view file, std::size_t offset) noexcept {
    return {load_le32(file.data() + offset), load_le32(file.data() + offset + 4)};
}

std::string segment_file_name(std::uint64_t sequence) {
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(sequence));
    return name;
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) noexcept {
    constexpr std::string_view suffix = ".log";
    if (name.size() != 20 + suffix.size() || name.substr(20) != suffix) return std::nullopt;
    std::uint64_t seq = 0;
    for (const char c : name.substr(0, 20)) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (seq > (UINT64_MAX - digit) / 10) return std::nullopt;
        seq = seq * 10 + digit;
    }
    return seq;
}

}  // namespace conveyor::storage
