// Reads the records of one log segment from its bytes (the whole file in memory) and says how
// the segment ends. Pure: no file access.
//
// How the end is classified, at the first frame that is not good (incomplete header, length 0
// or above the limit, payload past the end, CRC mismatch):
//   torn_tail  no good frame starts anywhere after it. This is what a crash during the last
//              write leaves: a prefix of the last frame(s), possibly followed by zeros or
//              stale bytes the file system exposed. The caller truncates at valid_end() and
//              logs that it did.
//   damaged    a good frame (length in range, CRC ok, record decodes) starts somewhere after
//              it: records after the bad spot would be lost, so this is not a torn write but
//              damage (a flipped bit, a corrupt length). The server refuses to start, naming
//              the file and error_offset(); `check-data --repair` may truncate there
//              (estimate_dropped() says how much that drops).
// Zeros from a frame boundary to the end of the file are a clean end: the writer zero-fills
// space ahead of its records (segment_writer.hpp), so a segment that was being written ends
// in zeros; valid_end() is then where the records end, before the zeros.
// A frame whose CRC matches but whose record does not decode is always `damaged`: those bytes
// are what was written, so no crash explains them.
// A torn tail is legitimate only in the newest segment; in an older one (rotated after its
// last fsync) the caller must treat it as damage.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/storage/log_format.hpp"
#include "conveyor/storage/record_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace conveyor::storage {

struct scan_options {
    std::uint32_t max_frame_len = default_max_frame_len;
};

enum class scan_status : std::uint8_t {
    record,     // one record was read
    clean_end,  // the segment ends after a good frame (or its header), maybe followed by zeros
    torn_tail,  // see above: truncate at valid_end()
    damaged,    // see above: refuse, or repair by truncating at error_offset()
};

enum class scan_error : std::uint8_t {
    none,
    header_truncated,        // the file is shorter than a segment header
    header_bad,              // header magic/version/crc wrong: header_error() says which
    frame_header_truncated,  // fewer than 8 bytes left for a frame header
    length_zero,             // a frame length of 0 (no record encodes to 0 bytes)
    length_too_large,        // a frame length above max_frame_len
    payload_truncated,       // the payload runs past the end of the file
    bad_crc,                 // the payload's crc32c does not match
    bad_record,              // the CRC matches but the record does not decode
};

std::string_view to_string(scan_error e) noexcept;

class segment_scanner {
public:
    explicit segment_scanner(std::string_view file, scan_options options = {}) noexcept;

    // Reads the next record into `out` and returns `record`, or returns how the segment ends.
    // Once an end is returned, every later call returns it again.
    scan_status next(core::record& out);
    // The same, without decoding: `payload` is the record's bytes (a view into the file),
    // checked with validate() so the end is classified exactly as next() would.
    scan_status next_payload(std::string_view& payload);

    std::uint64_t sequence() const noexcept { return sequence_; }  // from the header
    // Offset just past the last good frame (24 after a good header, 0 before).
    std::size_t valid_end() const noexcept { return pos_; }
    // Bytes of zeros after valid_end() at a clean end (preallocated space).
    std::size_t zero_tail() const noexcept {
        return end_ == scan_status::clean_end && ended_ ? file_.size() - pos_ : 0;
    }
    // Offset of the bad frame (== valid_end()) or 0 for a bad header; 0 with no error.
    std::size_t error_offset() const noexcept { return error_offset_; }
    scan_error error() const noexcept { return error_; }
    storage::header_error header_error() const noexcept { return header_error_; }
    decode_error record_error() const noexcept { return record_error_; }  // for bad_record
    std::size_t records_read() const noexcept { return records_; }

private:
    scan_status read_header();
    scan_status stop(scan_error e, bool may_be_torn);

    std::string_view file_;
    scan_options options_;
    std::size_t pos_ = 0;
    bool header_read_ = false;
    bool ended_ = false;
    scan_status end_ = scan_status::clean_end;
    std::uint64_t sequence_ = 0;
    std::size_t error_offset_ = 0;
    scan_error error_ = scan_error::none;
    storage::header_error header_error_ = storage::header_error::none;
    decode_error record_error_ = decode_error::none;
    std::size_t records_ = 0;
};

// A whole segment at once, for tests and tools.
struct scan_result {
    std::vector<core::record> records;
    scan_status end = scan_status::clean_end;
    scan_error error = scan_error::none;
    std::uint64_t sequence = 0;
    std::size_t valid_end = 0;
    std::size_t error_offset = 0;
};
scan_result scan_segment(std::string_view file, scan_options options = {});

// Offset of the first good frame (length in range, CRC ok, record decodes) starting at or
// after `from`, or npos. Tries every byte offset: cost grows with the bytes searched, so it
// is meant for the failure path only.
std::size_t find_good_frame(std::string_view file, std::size_t from, scan_options options = {});

// What truncating at `bad_offset` drops: every byte from there, and (best effort) the good
// records found after it by resynchronising on good frames. The bad frame itself is not
// counted in `good_records`. A frame forged inside a payload could be miscounted.
struct drop_estimate {
    std::size_t bytes = 0;
    std::size_t good_records = 0;
};
drop_estimate estimate_dropped(std::string_view file, std::size_t bad_offset,
                               scan_options options = {});

}  // namespace conveyor::storage
