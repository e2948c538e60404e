#include "conveyor/storage/segment_writer.hpp"

#include "conveyor/storage/crc32c.hpp"
#include "conveyor/storage/errors.hpp"
#include "conveyor/storage/record_codec.hpp"

#include <algorithm>
#include <cerrno>
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

namespace {

bool is_no_space(const std::error_code& ec) noexcept {
    return ec == std::errc::no_space_on_device || ec.value() == EDQUOT;
}

}  // namespace

io_result<file_handle> segment_writer::create_segment(std::uint64_t sequence) {
    const std::string path = segment_path(sequence);
    io_result<file_handle> created = io_.create_exclusive(path);
    if (created.error) {
        if (is_no_space(created.error)) created.error = storage_errc::no_space;
        return created;
    }
    std::string header;
    append_segment_header(sequence, header);
    std::error_code ec = io_.write_at(created.value, 0, header);
    if (is_no_space(ec)) {
        // Nothing of this segment matters yet: take it away again.
        io_.close(created.value);
        ec = io_.remove(path);
        return {{}, ec ? ec : make_error_code(storage_errc::no_space)};
    }
    if (!ec) ec = io_.sync(created.value);
    if (!ec) ec = io_.sync_directory(options_.directory);
    if (ec) {
        io_.close(created.value);
        return {{}, ec};
    }
    return created;
}

std::error_code segment_writer::open(std::uint64_t sequence) {
    if (failure_) return storage_errc::log_failed;
    if (file_.valid()) return storage_errc::already_open;
    const io_result<file_handle> created = create_segment(sequence);
    if (created.error == storage_errc::no_space) return created.error;
    if (created.error) return fail(created.error);
    file_ = created.value;
    sequence_ = sequence;
    segment_bytes_ = segment_header_size;
    writeback_from_ = segment_header_size;
    allocated_ = segment_header_size;
    unsynced_ = false;
    return {};
}

std::error_code segment_writer::reserve(std::uint64_t room, std::uint64_t max_fill) {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    const std::uint64_t chunk = options_.preallocate_chunk;
    if (chunk == 0 || allocated_ >= segment_bytes_ + room) return {};
    // Whole chunks, from the end of what is allocated, until `room` fits.
    for (std::uint64_t filled = 0; allocated_ < segment_bytes_ + room && filled < max_fill;
         filled += chunk) {
        const std::error_code ec = io_.allocate(file_, allocated_, chunk);
        if (is_no_space(ec)) return storage_errc::no_space;
        if (ec) return fail(ec);
        allocated_ += chunk;
    }
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

std::error_code segment_writer::write_frames(std::string_view frames, std::size_t records) {
    if (!batch_.empty()) {
        if (std::error_code ec = append_frames(frames, records)) return ec;
        return write();
    }
    return write_out(frames);  // from the caller's buffer
}

std::error_code segment_writer::write_out(std::string_view bytes) {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    if (bytes.empty()) return {};
    if (std::error_code ec = io_.write_at(file_, segment_bytes_, bytes)) return fail(ec);
    segment_bytes_ += bytes.size();
    allocated_ = std::max(allocated_, segment_bytes_);
    unsynced_ = true;
    return {};
}

std::error_code segment_writer::write() {
    if (std::error_code ec = write_out(batch_)) return ec;
    batch_.clear();
    batch_records_ = 0;
    return {};
}

void segment_writer::start_writeback() {
    if (failure_ || !file_.valid()) return;
    if (segment_bytes_ > writeback_from_) {
        io_.start_writeback(file_, writeback_from_, segment_bytes_ - writeback_from_);
        writeback_from_ = segment_bytes_;
    }
}

std::error_code segment_writer::sync() {
    if (failure_) return storage_errc::log_failed;
    if (!file_.valid()) return storage_errc::not_open;
    if (!unsynced_) return {};
    if (std::error_code ec = io_.sync(file_)) return fail(ec);
    unsynced_ = false;
    writeback_from_ = segment_bytes_;
    return {};
}

std::error_code segment_writer::rotate() {
    if (std::error_code ec = sync()) return ec;
    // The next segment first: without room for it, the current one stays open.
    const io_result<file_handle> next = create_segment(sequence_ + 1);
    if (next.error == storage_errc::no_space) return next.error;
    if (next.error) return fail(next.error);
    const file_handle old = file_;
    const std::string old_path = segment_path(sequence_);
    const bool cut = allocated_ > segment_bytes_;
    const std::uint64_t old_bytes = segment_bytes_;
    file_ = next.value;
    ++sequence_;
    segment_bytes_ = segment_header_size;
    writeback_from_ = segment_header_size;
    allocated_ = segment_header_size;
    if (std::error_code ec = io_.close(old)) return fail(ec);
    // Give the unused zeros back. Not needed for correctness (readers stop at the zeros), so
    // a failure only leaves them in place.
    if (cut) io_.truncate(old_path, old_bytes);
    return {};
}

std::error_code segment_writer::flush() {
    if (std::error_code ec = write()) return ec;
    if (std::error_code ec = sync()) return ec;
    return rotation_due() ? rotate() : std::error_code{};
}

void segment_writer::trim() {
    if (failure_ || !file_.valid() || allocated_ <= segment_bytes_) return;
    if (!io_.truncate(segment_path(sequence_), segment_bytes_)) allocated_ = segment_bytes_;
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
