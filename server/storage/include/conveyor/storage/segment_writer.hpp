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
// directory synced, before flush() returns. The closed segment is then cut to its records
// (its zero-filled space ahead is given back).
//
// Space ahead (disk full). reserve(n) allocates the segment ahead of its records (fallocate:
// reads as zeros, nothing written), in preallocate_chunk steps, until n bytes past them are
// allocated. Records written into that space overwrite zeros: they need no new disk blocks (so they
// cannot fail with ENOSPC) and their fdatasync has no file size to update. Running out of room is
// not a failure: reserve() and rotate() return storage_errc::no_space and leave the writer as it
// was (the new segment, if any, removed), so the owner can refuse new work while records already
// promised still fit in the space reserved earlier. Readers treat the zeros after the last record
// as the end.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/storage/file_io.hpp"
#include "conveyor/storage/log_format.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

namespace conveyor::storage {

struct writer_options {
    std::string directory;
    std::uint64_t segment_target_bytes = std::uint64_t{64} * 1024 * 1024;
    std::uint32_t max_frame_len = default_max_frame_len;
    std::uint64_t preallocate_chunk = std::uint64_t{1} << 20;  // 0: no space reserved ahead
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
    // append_frames() then write(), without copying the frames when the batch is empty.
    std::error_code write_frames(std::string_view frames, std::size_t records);

    // Writes and syncs the batch (no-op when empty), then rotates if due.
    std::error_code flush();

    // The steps of flush(), for callers that sync less often than they write (fsync modes
    // everysec and no): write() hands the batch to the OS, sync() makes everything written so
    // far durable, rotate() syncs the current segment and opens the next one.
    std::error_code write();
    std::error_code sync();
    // Starts the disk writing what was written since the last sync or call, without waiting
    // (file_io::start_writeback), so the next sync has less to wait for.
    void start_writeback();

    std::error_code rotate();
    bool rotation_due() const noexcept { return segment_bytes_ >= options_.segment_target_bytes; }
    // Zero-fills ahead until `room` bytes past the records are allocated (a no-op when they
    // are), filling at most `max_fill` bytes in this call (rounded up to a chunk), so a large
    // room is filled over several batches. storage_errc::no_space when the disk has no room
    // (what was filled stays).
    std::error_code reserve(std::uint64_t room,
                            std::uint64_t max_fill = std::numeric_limits<std::uint64_t>::max());
    // Bytes allocated ahead of the records (zero-filled, not yet written with records).
    std::uint64_t room() const noexcept { return allocated_ - segment_bytes_; }

    // Gives back the zeros ahead of the records (a clean stop leaves files that end at their
    // last record). Errors leave the zeros, which readers skip.
    void trim();

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
    std::error_code write_out(std::string_view bytes);
    // Creates segment `sequence` with its header, synced, directory synced. On no space the
    // file is removed again and storage_errc::no_space returned.
    io_result<file_handle> create_segment(std::uint64_t sequence);

    file_io& io_;
    writer_options options_;
    file_handle file_;
    std::uint64_t sequence_ = 0;
    std::uint64_t segment_bytes_ = 0;
    std::uint64_t allocated_ = 0;  // file size: records, then zeros
    std::string batch_;
    // Start of what start_writeback() has not covered yet.
    std::uint64_t writeback_from_ = segment_header_size;
    std::size_t batch_records_ = 0;
    std::error_code failure_;
    bool unsynced_ = false;
};

// Appends one frame holding `r` to `out` (the bytes append() adds to the batch). On error
// (record_too_large, bad_record) `out` is left as it was.
std::error_code append_record_frame(const core::record& r, std::string& out,
                                    std::uint32_t max_frame_len = default_max_frame_len);

}  // namespace conveyor::storage
