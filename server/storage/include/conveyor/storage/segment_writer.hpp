// Appends records to log segments in one directory. Not thread-safe: one owner (the storage
// thread) calls it.
//
// append() only encodes into an in-memory batch; flush() writes the batch with one write and
// makes it durable with one fdatasync (group commit: many records, one sync). A record is
// durable, and may be acknowledged, only once a flush() that covered it returned success.
//
// Fail-stop: the first failed create, write or sync is remembered (failure()) and every later
// open/append/flush returns storage_errc::log_failed without touching the disk. Nothing is
// retried on the same descriptor. What earlier successful flushes made durable stays intact;
// the failed batch may be partly on disk, where recovery sees it as a torn tail.
//
// Rotation: after a flush leaves the current segment at or above segment_target_bytes, the
// next segment (<sequence + 1>.log) is created, its header written and synced, and the
// directory synced, before flush() returns.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/storage/file_io.hpp"
#include "conveyor/storage/log_format.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace conveyor::storage {

struct writer_options {
    std::string directory;
    std::uint64_t segment_target_bytes = std::uint64_t{64} * 1024 * 1024;
    std::uint32_t max_frame_len = default_max_frame_len;
};

class segment_writer {
public:
    segment_writer(file_io& io, writer_options options);
    ~segment_writer();
    segment_writer(const segment_writer&) = delete;
    segment_writer& operator=(const segment_writer&) = delete;

    // Creates segment <sequence>.log (it must not exist), writes and syncs its header and
    // syncs the directory.
    std::error_code open(std::uint64_t sequence);

    // Adds one record to the batch. record_too_large and bad_record leave the writer usable
    // (nothing was written); log_failed and not_open are returned as described above.
    std::error_code append(const core::record& r);

    // Adds frames already encoded with append_record_frame (`records` of them).
    std::error_code append_frames(std::string_view frames, std::size_t records);

    // Writes and syncs the batch (no-op when empty), then rotates if due.
    std::error_code flush();

    // The steps of flush(), for callers that sync less often than they write (fsync modes
    // everysec and no): write() hands the batch to the OS, sync() makes everything written so
    // far durable, rotate() syncs the current segment and opens the next one.
    std::error_code write();
    std::error_code sync();
    std::error_code rotate();
    bool rotation_due() const noexcept { return segment_bytes_ >= options_.segment_target_bytes; }

    // Closes the segment without flushing; the batch is dropped.
    void close();

    const std::error_code& failure() const noexcept { return failure_; }
    bool is_open() const noexcept { return file_.valid(); }
    std::uint64_t sequence() const noexcept { return sequence_; }
    // Bytes of the current segment handed to the OS (durable once sync() returned).
    std::uint64_t segment_bytes() const noexcept { return segment_bytes_; }
    bool unsynced() const noexcept { return unsynced_; }
    std::size_t pending_bytes() const noexcept { return batch_.size(); }
    std::size_t pending_records() const noexcept { return batch_records_; }
    std::string segment_path(std::uint64_t sequence) const;

private:
    std::error_code fail(std::error_code ec);

    file_io& io_;
    writer_options options_;
    file_handle file_;
    std::uint64_t sequence_ = 0;
    std::uint64_t segment_bytes_ = 0;
    std::string batch_;
    std::size_t batch_records_ = 0;
    std::error_code failure_;
    bool unsynced_ = false;
};

// Appends one frame holding `r` to `out` (the bytes append() adds to the batch). On error
// (record_too_large, bad_record) `out` is left as it was.
std::error_code append_record_frame(const core::record& r, std::string& out,
                                    std::uint32_t max_frame_len = default_max_frame_len);

}  // namespace conveyor::storage
