// The file-system seam of the storage layer. The segment writer does all its I/O through a
// file_io, so tests can inject disk faults (faulty_file_io) without a special file system.
//
// Contract for every implementation: errors are returned, never thrown; a failed write or
// sync says nothing about what reached the disk, and the caller must not retry it on the same
// descriptor as if it had worked (after a failed fsync the kernel may already have dropped the
// dirty pages and cleared the error: PostgreSQL's "fsyncgate").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace conveyor::storage {

struct file_handle {
    int fd = -1;
    bool valid() const noexcept { return fd >= 0; }
};

template <class T>
struct io_result {
    T value{};
    std::error_code error;
};

class file_io {
public:
    virtual ~file_io() = default;

    // Creates `path` for writing (write_all writes from offset 0 on, in order; write_at at any
    // offset); fails (EEXIST) when it exists.
    virtual io_result<file_handle> create_exclusive(const std::string& path) = 0;
    // Opens an existing file for appending.
    virtual io_result<file_handle> open_append(const std::string& path) = 0;
    // Writes all of `bytes` at the end of the file, or returns the error that stopped it
    // (some bytes may have been written).
    virtual std::error_code write_all(file_handle f, std::string_view bytes) = 0;
    // Writes all of `bytes` at `offset` (pwrite), as write_all does otherwise. A write that
    // stays inside space already written (or zero-filled) needs no new disk blocks, so it
    // cannot fail with ENOSPC.
    virtual std::error_code write_at(file_handle f, std::uint64_t offset,
                                     std::string_view bytes) = 0;
    // Gives `f` disk blocks for [offset, offset + length), reading as zeros where nothing was
    // written (fallocate, mode 0: the file grows when that passes its end). Later writes
    // there need no new blocks, as after writing zeros, but the zeros are not written first.
    // Where the file system has no fallocate, zeros are written.
    virtual std::error_code allocate(file_handle f, std::uint64_t offset, std::uint64_t length) = 0;
    // Makes everything written to `f` durable (fdatasync).
    virtual std::error_code sync(file_handle f) = 0;
    // Starts writing [offset, offset + length) back to the disk without waiting for it
    // (sync_file_range WRITE): no durability promise, only less for the next sync to do.
    virtual void start_writeback(file_handle f, std::uint64_t offset, std::uint64_t length) = 0;
    virtual io_result<std::uint64_t> file_size(file_handle f) = 0;
    virtual std::error_code close(file_handle f) = 0;
    // Cuts `path` to `size` bytes and makes that durable (recovery of a torn tail).
    virtual std::error_code truncate(const std::string& path, std::uint64_t size) = 0;
    // Makes the directory entries of `dir` durable (after creating a file in it).
    virtual std::error_code sync_directory(const std::string& dir) = 0;
    // Reads the whole file into `out` (replaces its contents).
    virtual std::error_code read_all(const std::string& path, std::string& out) = 0;
    // Removes a file; one already gone counts as removed. Durable after sync_directory.
    virtual std::error_code remove(const std::string& path) = 0;
    // Replaces `to` with `from` atomically. Durable after sync_directory.
    virtual std::error_code rename(const std::string& from, const std::string& to) = 0;
};

// Replaces the file `path` in directory `dir` with `bytes`, atomically and durably: written to
// `temp` (a leftover of an interrupted run is removed first), synced, renamed over `path`, the
// directory synced. A crash leaves the old or the new file, never a torn one. On failure
// `temp` is removed (best effort) and `path` is untouched.
std::error_code replace_file(file_io& io, const std::string& dir, const std::string& path,
                             const std::string& temp, std::string_view bytes);

// The real thing: POSIX calls, EINTR retried, short writes continued.
class posix_file_io final : public file_io {
public:
    io_result<file_handle> create_exclusive(const std::string& path) override;
    io_result<file_handle> open_append(const std::string& path) override;
    std::error_code write_all(file_handle f, std::string_view bytes) override;
    std::error_code write_at(file_handle f, std::uint64_t offset, std::string_view bytes) override;
    std::error_code allocate(file_handle f, std::uint64_t offset, std::uint64_t length) override;
    std::error_code sync(file_handle f) override;
    void start_writeback(file_handle f, std::uint64_t offset, std::uint64_t length) override;
    io_result<std::uint64_t> file_size(file_handle f) override;
    std::error_code close(file_handle f) override;
    std::error_code truncate(const std::string& path, std::uint64_t size) override;
    std::error_code sync_directory(const std::string& dir) override;
    std::error_code read_all(const std::string& path, std::string& out) override;
    std::error_code remove(const std::string& path) override;
    std::error_code rename(const std::string& from, const std::string& to) override;
};

// Wraps another file_io and fails chosen calls. Counters are 1-based and count every call
// made through this object; a fault fires once, on exactly the nth call. Thread-safe (the
// server's DEBUG LOG-FAULT arms it from the core thread while the storage thread writes).
class faulty_file_io final : public file_io {
public:
    explicit faulty_file_io(file_io& inner) noexcept : inner_(inner) {}

    // The nth write (write_all, write_at or allocate) fails with `error` after passing the
    // first `partial_bytes` bytes (capped at the write's size; none for allocate) to the inner
    // file_io: a short write, then the error.
    void fail_write(std::uint64_t nth, int error, std::size_t partial_bytes = 0) noexcept;
    // The nth sync fails with `error` (the inner sync is not called).
    void fail_sync(std::uint64_t nth, int error) noexcept;
    // The nth create_exclusive fails with `error`.
    void fail_create(std::uint64_t nth, int error) noexcept;
    // The nth truncate / remove fails with `error` (the inner call is not made).
    void fail_truncate(std::uint64_t nth, int error) noexcept;
    void fail_remove(std::uint64_t nth, int error) noexcept;

    // Every later sync sleeps this long first (a slow disk); 0 turns it off.
    void delay_syncs(std::chrono::milliseconds delay) noexcept;
    // A full disk while on: a write that would make a file longer writes only the part inside
    // the file's current size and fails with ENOSPC; overwrites inside it still work (a
    // zero-filled, preallocated region), and so do creating and truncating files. allocate()
    // past the file's size fails with ENOSPC and allocates nothing.
    void set_disk_full(bool full) noexcept;
    bool disk_full() const noexcept;

    // Power-loss simulation (docs/reliability.md T2). While on, each successful sync of a file
    // records how far its data is durable in a side file `<path>.synced` (20 decimal digits,
    // rewritten in place with one pwrite, so a kill -9 never tears it): the end of the last
    // write that was not all zeros, as of that sync. Cutting the file there after a kill -9
    // leaves what a power loss could leave at worst. Files created while it is off are not
    // tracked.
    void track_syncs(bool on) noexcept;

    std::uint64_t writes() const noexcept;
    std::uint64_t syncs() const noexcept;
    std::uint64_t creates() const noexcept;
    std::uint64_t reads() const noexcept;  // read_all calls

    io_result<file_handle> create_exclusive(const std::string& path) override;
    io_result<file_handle> open_append(const std::string& path) override;
    std::error_code write_all(file_handle f, std::string_view bytes) override;
    std::error_code write_at(file_handle f, std::uint64_t offset, std::string_view bytes) override;
    std::error_code allocate(file_handle f, std::uint64_t offset, std::uint64_t length) override;
    std::error_code sync(file_handle f) override;
    void start_writeback(file_handle f, std::uint64_t offset, std::uint64_t length) override;
    io_result<std::uint64_t> file_size(file_handle f) override;
    std::error_code close(file_handle f) override;
    std::error_code truncate(const std::string& path, std::uint64_t size) override;
    std::error_code sync_directory(const std::string& dir) override;
    std::error_code read_all(const std::string& path, std::string& out) override;
    std::error_code remove(const std::string& path) override;
    std::error_code rename(const std::string& from, const std::string& to) override;

private:
    // write_all (offset: none, the write goes at the end) and write_at share the fault
    // counter and the disk-full model.
    std::error_code write(file_handle f, std::optional<std::uint64_t> offset,
                          std::string_view bytes);

    struct fault {
        std::uint64_t nth = 0;  // 0: never
        int error = 0;
        std::size_t partial_bytes = 0;
    };
    struct write_check {
        bool faulted = false;
        fault armed;
        bool disk_full = false;
    };
    write_check count_write();

    file_io& inner_;
    mutable std::mutex mu_;  // the server's storage thread and core thread share one
    std::chrono::milliseconds sync_delay_{0};
    bool disk_full_ = false;
    bool track_syncs_ = false;
    struct tracked_file {
        std::string path;
        std::uint64_t data_end = 0;  // end of the furthest write that was not all zeros
        int side_fd = -1;
    };
    std::map<int, tracked_file> tracked_;  // by descriptor
    void note_write(file_handle f, std::optional<std::uint64_t> offset, std::string_view bytes);
    void note_sync(file_handle f);
    void note_sync_locked(tracked_file& t);
    // Starts tracking `f` (mu_ held): its side file, durable up to `data_end` so far.
    tracked_file& track_locked(file_handle f, const std::string& path, std::uint64_t data_end);
    fault write_fault_;
    fault sync_fault_;
    fault create_fault_;
    fault truncate_fault_;
    fault remove_fault_;
    std::uint64_t truncates_ = 0;
    std::uint64_t removes_ = 0;
    std::uint64_t writes_ = 0;
    std::uint64_t syncs_ = 0;
    std::uint64_t creates_ = 0;
    std::uint64_t reads_ = 0;
};

}  // namespace conveyor::storage
