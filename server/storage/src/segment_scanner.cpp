#include "conveyor/storage/segment_scanner.hpp"

#include "conveyor/storage/crc32c.hpp"

#include <algorithm>
#include <utility>

namespace conveyor::storage {

namespace {

// A frame that passed every check but decoding has `error == none`.
struct checked_frame {
    scan_error error = scan_error::none;
    std::string_view payload;
    bool good() const noexcept { return error == scan_error::none; }
};

checked_frame bad_frame(scan_error e) noexcept {
    return {e, {}};
}

// Checks the lengths of the frame at `offset` and yields its payload, CRC not yet checked.
// All length arithmetic is done on the bytes remaining, so a length near UINT32_MAX cannot
// overflow or cause an allocation.
checked_frame frame_bounds(std::string_view file, std::size_t offset, const scan_options& opt,
                           std::uint32_t& crc) {
    const std::size_t remaining = file.size() - offset;
    if (remaining < frame_header_size) return bad_frame(scan_error::frame_header_truncated);
    const frame_header h = read_frame_header(file, offset);
    if (h.length == 0) return bad_frame(scan_error::length_zero);
    if (h.length > opt.max_frame_len) return bad_frame(scan_error::length_too_large);
    if (h.length > remaining - frame_header_size) return bad_frame(scan_error::payload_truncated);
    crc = h.crc;
    return {scan_error::none, file.substr(offset + frame_header_size, h.length)};
}

// Checks the frame at `offset`: its lengths, then its CRC.
checked_frame check_frame(std::string_view file, std::size_t offset, const scan_options& opt) {
    std::uint32_t crc = 0;
    checked_frame f = frame_bounds(file, offset, opt, crc);
    if (f.good() && crc32c(f.payload) != crc) return bad_frame(scan_error::bad_crc);
    return f;
}

bool all_zero(std::string_view bytes) noexcept {
    return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == '\0'; });
}

}  // namespace

segment_scanner::segment_scanner(std::string_view file, scan_options options) noexcept
    : file_(file), options_(options) {}

scan_status segment_scanner::next(core::record& out) {
    std::string_view payload;
    const scan_status s = next_payload(payload);
    if (s == scan_status::record) out = decode(payload).record;  // validated: it decodes
    return s;
}

scan_status segment_scanner::next_payload(std::string_view& payload) {
    if (ended_) return end_;
    if (!header_read_) {
        const scan_status s = read_header();
        if (ended_) return s;
    }
    if (pos_ == file_.size()) {
        ended_ = true;
        end_ = scan_status::clean_end;
        return end_;
    }
    const checked_frame frame = check_frame(file_, pos_, options_);
    if (!frame.good()) {
        // Zeros from here to the end: the writer's preallocated space, not yet used.
        if (all_zero(file_.substr(pos_))) {
            ended_ = true;
            end_ = scan_status::clean_end;
            return end_;
        }
        return stop(frame.error, true);
    }
    if (const decode_error e = validate(frame.payload); e != decode_error::none) {
        record_error_ = e;
        return stop(scan_error::bad_record, false);
    }
    payload = frame.payload;
    pos_ += frame_header_size + frame.payload.size();
    ++records_;
    return scan_status::record;
}

// A header shorter than 24 bytes or one of zeros only (the file was created and extended but
// its first write never reached the disk) is a torn tail at 0; any other bad header is damage.
scan_status segment_scanner::read_header() {
    header_read_ = true;
    const segment_header h = parse_segment_header(file_);
    header_error_ = h.error;
    if (h.error == header_error::none) {
        sequence_ = h.sequence;
        pos_ = segment_header_size;
        return scan_status::record;
    }
    const bool torn = h.error == header_error::truncated || all_zero(file_);
    ended_ = true;
    end_ = torn ? scan_status::torn_tail : scan_status::damaged;
    error_ =
        h.error == header_error::truncated ? scan_error::header_truncated : scan_error::header_bad;
    error_offset_ = 0;
    return end_;
}

scan_status segment_scanner::stop(scan_error e, bool may_be_torn) {
    ended_ = true;
    error_ = e;
    error_offset_ = pos_;
    const bool torn = may_be_torn && find_good_frame(file_, pos_ + 1, options_) == file_.npos;
    end_ = torn ? scan_status::torn_tail : scan_status::damaged;
    return end_;
}

scan_result scan_segment(std::string_view file, scan_options options) {
    scan_result result;
    segment_scanner scanner(file, options);
    core::record r;
    scan_status s;
    while ((s = scanner.next(r)) == scan_status::record) {
        result.records.push_back(std::move(r));
    }
    result.end = s;
    result.error = scanner.error();
    result.sequence = scanner.sequence();
    result.valid_end = scanner.valid_end();
    result.error_offset = scanner.error_offset();
    return result;
}

// Cheap checks first: the length fields, then the record structure (O(fields)), and the CRC
// (O(length)) only for a candidate that passed both, so a search over garbage stays linear in
// practice.
std::size_t find_good_frame(std::string_view file, std::size_t from, scan_options options) {
    for (std::size_t p = from; p < file.size(); ++p) {
        std::uint32_t crc = 0;
        const checked_frame f = frame_bounds(file, p, options, crc);
        if (f.good() && validate(f.payload) == decode_error::none && crc32c(f.payload) == crc)
            return p;
    }
    return file.npos;
}

drop_estimate estimate_dropped(std::string_view file, std::size_t bad_offset,
                               scan_options options) {
    drop_estimate est;
    if (bad_offset >= file.size()) return est;
    est.bytes = file.size() - bad_offset;
    // Good frames usually follow each other, so each search after a hit succeeds at once.
    std::size_t p = find_good_frame(file, bad_offset + 1, options);
    while (p != file.npos) {
        ++est.good_records;
        p += frame_header_size + read_frame_header(file, p).length;
        p = find_good_frame(file, p, options);
    }
    return est;
}

std::string_view to_string(scan_error e) noexcept {
    switch (e) {
        case scan_error::none:
            return "ok";
        case scan_error::header_truncated:
            return "segment header truncated";
        case scan_error::header_bad:
            return "bad segment header";
        case scan_error::frame_header_truncated:
            return "frame header truncated";
        case scan_error::length_zero:
            return "frame length 0";
        case scan_error::length_too_large:
            return "frame length above the limit";
        case scan_error::payload_truncated:
            return "frame payload runs past the end of the segment";
        case scan_error::bad_crc:
            return "frame checksum mismatch";
        case scan_error::bad_record:
            return "frame checksum ok but the record does not decode";
    }
    return "unknown scan error";
}

}  // namespace conveyor::storage
