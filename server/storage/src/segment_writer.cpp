#include "conveyor/storage/segment_writer.hpp"

#include "conveyor/storage/crc32c.hpp"
#include "conveyor/storage/errors.hpp"
#include "conveyor/storage/record_codec.hpp"

#include <utility>

namespace conveyor::storage {

segment_writer::segment_writer(file_io& io, writer_options options)
    : io_(io), options_(std::move(options)) {}

segment_writer::~segment_writer() {
    close();
}

std::string segment_writer::segment_path(std::uint64_t sequence) const {
    return options_.directory + "/" + segment_file_name(sequence);
}

std::error_code segment_writer::fail(std::error_code ec) {
    failure_ = ec;
    close();
    return ec;
}

std::error_code segment_writer::open(std::uint64_t sequence) {
    if (failure_) return storage_errc::log_failed;
    if (file_.valid()) return storage_errc::already_open;
    const io_result<file_handle> created = io_.create_exclusive(segment_path(sequence));
    if (created.error) return fail(created.error);
    file_ = created.value;
    sequence_ = sequence;
    segment_bytes_ = 0;
    std::string header;
    append_segment_header(sequence, header);
    if (std::error_code ec = io_.write_all(file_, header)) return fail(ec);
    if (std::error_code ec = io_.sync(file_)) return fail(ec);
    if (std::error_code ec = io_.sync_directory(options_.directory)) return fail(ec);
    segment_bytes_ = header.size();
    return {};
}

// The frame is built in place at the end of `out`: header placeholder, then the encoded
// record, then the header is filled in (no copy of the payload).
std::error_code append_record_frame(const core::record& r, std::string& out,
                                    std::uint32_t max_frame_len) {
    const std::size_t start = out.size();
    out.append(frame_header_size, '\0');
    encode(r, out);
    const std::size_t length = out.size() - start - frame_header_size;
    if (length == 0 || length > max_frame_len) {
        out.resize(start);
        return length == 0 ? storage_errc::bad_record : storage_errc::record_too_large;
    }
    const std::string_view payload = std::string_view(out).substr(start + frame_header_size);
    store_le32(static_cast<std::uint32_t>(length), out.data() + start);
    store_le32(crc32c(payload), out.data() + start + 4);
    return {};
}

std::error_code segment_writer::append(const core::record& r) {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    if (std::error_code ec = append_record_frame(r, batch_, options_.max_frame_len)) return ec;
    ++batch_records_;
    return {};
}

std::error_code segment_writer::append_frames(std::string_view frames, std::size_t records) {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    batch_.append(frames);
    batch_records_ += records;
    return {};
}

std::error_code segment_writer::write() {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    if (batch_.empty()) return {};
    if (std::error_code ec = io_.write_all(file_, batch_)) return fail(ec);
    segment_bytes_ += batch_.size();
    unsynced_ = true;
    batch_.clear();
    batch_records_ = 0;
    return {};
}

std::error_code segment_writer::sync() {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    if (!unsynced_) return {};
    if (std::error_code ec = io_.sync(file_)) return fail(ec);
    unsynced_ = false;
    return {};
}

std::error_code segment_writer::rotate() {
    if (std::error_code ec = sync()) return ec;
    const std::uint64_t next = sequence_ + 1;
    const file_handle old = file_;
    file_ = {};
    if (std::error_code ec = io_.close(old)) return fail(ec);
    return open(next);
}

std::error_code segment_writer::flush() {
    if (std::error_code ec = write()) return ec;
    if (std::error_code ec = sync()) return ec;
    return rotation_due() ? rotate() : std::error_code{};
}

void segment_writer::close() {
    if (file_.valid()) {
        io_.close(file_);  // nothing to do about a close error: the data was synced or failed
        file_ = {};
    }
    batch_.clear();
    batch_records_ = 0;
    unsynced_ = false;
}

}  // namespace conveyor::storage
