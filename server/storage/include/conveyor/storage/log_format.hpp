// On-disk format of a log segment. All integers little-endian.
//
//   segment header (24 bytes)
//     0  magic      8 bytes  "CVYLOG1\0"
//     8  version    u32      format_version (1)
//    12  sequence   u64      segment sequence number (also in the file name)
//    20  crc        u32      crc32c of bytes [0, 20)
//   then frames, back to back, to the end of the file:
//     0  length     u32      payload length, 1 .. max_frame_len
//     4  crc        u32      crc32c of the payload
//     8  payload    length bytes: one record (record_codec.hpp)
//
// Segment files are named <sequence>.log with the sequence zero-padded to 20 digits, so that
// names sort in sequence order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conveyor::storage {

inline constexpr std::string_view segment_magic{"CVYLOG1\0", 8};
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t segment_header_size = 24;
inline constexpr std::size_t frame_header_size = 8;

// Largest payload accepted by default: the largest task payload we intend to allow (64 MiB)
// plus room for the other fields. A length field above the limit is damage, not a request to
// read that much.
inline constexpr std::uint32_t default_max_frame_len = 64u * 1024 * 1024 + 1024;

void append_segment_header(std::uint64_t sequence, std::string& out);

enum class header_error : std::uint8_t { none, truncated, bad_magic, bad_version, bad_crc };
std::string_view to_string(header_error e) noexcept;

struct segment_header {
    header_error error = header_error::none;
    std::uint32_t version = 0;
    std::uint64_t sequence = 0;
};

// Parses the first segment_header_size bytes of `file`.
segment_header parse_segment_header(std::string_view file) noexcept;

// Appends one frame (header + payload). The caller keeps payload.size() within its limit.
void append_frame(std::string_view payload, std::string& out);

// Frame header fields at `file[offset]`; the caller checks that 8 bytes are there.
struct frame_header {
    std::uint32_t length = 0;
    std::uint32_t crc = 0;
};
frame_header read_frame_header(std::string_view file, std::size_t offset) noexcept;

std::uint32_t load_le32(const char* p) noexcept;
std::uint64_t load_le64(const char* p) noexcept;
void store_le32(std::uint32_t v, char* p) noexcept;
void append_le32(std::uint32_t v, std::string& out);
void append_le64(std::uint64_t v, std::string& out);

// "00000000000000000042.log" for 42.
std::string segment_file_name(std::uint64_t sequence);
// The sequence of a segment file name, or nullopt when the name is not one.
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) noexcept;

}  // namespace conveyor::storage
