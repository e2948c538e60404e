// The broker's log: recovery at start, then group commit.
//
// Threads. The owner (the server's core thread) calls recover(), start(), append(), kick()
// and stop(). append() only encodes the record into the pending batch; kick() hands the whole
// pending batch over at once: one write and, under fsync `always`, one fdatasync for every
// record appended since the last kick (group commit). The owner kicks once per round of its
// event loop, after serving every client that was ready, so those clients share one fsync,
// as Redis's `appendfsync always` does in beforeSleep.
//   - `always`: kick() writes and syncs on the owner's thread and returns when the batch is
//     durable (measured faster than a hand-off to a storage thread on 2 cores: no wake-ups,
//     larger groups; bench/README.md). The owner may kick without a sync when no reply
//     waits for the batch (kick(false): AMQP publishes without confirms, lease/ack records of
//     AMQP consumers): the batch is written (a crash of the process loses nothing) and made
//     durable by the next kick(true) (a waiter, or the owner's once-a-second sync), since an
//     fdatasync covers everything written before it; meanwhile its writeback is started
//     (sync_file_range). released() stays at the newest synced record until then.
//     A large batch with a waiter (at least log_options::handoff_bytes, e.g. a round of
//     64 KiB AMQP publishes with confirms) is handed to a sync thread instead, so the owner
//     goes on reading and appending while the disk takes the batch: kick() returns at once,
//     released() moves on the sync thread (on_released is called there), and every kick
//     until that thread is done leaves its batch to it (it writes and syncs them in turn).
//     Then the owner writes inline again. The writer has one user at a time: the owner, or
//     the sync thread while it holds the hand-off (handoff_, under the mutex).
//   - `everysec`, `no`: kick() wakes a storage thread, which writes the batch and syncs once a
//     second (`everysec`) or only at segment rotation and stop (`no`).
//
// Positions. Records are numbered 1, 2, ... in append order; appended() is the newest number.
// released() is the newest record that a reply may depend on: under `always` the newest
// fsynced record, under `everysec` and `no` the newest record handed to the OS (so a crash of
// the process alone loses nothing acknowledged in any mode; a crash of the machine loses what
// was not yet synced: up to about a second under `everysec`, whatever the OS held under `no`).
// The owner holds each reply until released() covers every record appended before it.
//
// Fail-stop. The first failed write, fsync or rotation is remembered (failure()); released()
// never moves again and append() refuses every later record. Nothing is retried on the same
// descriptor (segment_writer.hpp).
//
// Disk full is not a failure. After each batch the log keeps space ahead of its records
// zero-filled (segment_writer::reserve): one preallocate chunk plus the owner's reserve
// (set_reserve: what the records that finish the live tasks need). When the disk cannot give
// that space, or a new segment at rotation, the log is `space_low()`: the owner asks admit()
// before each change, which refuses changes that add work and lets the others (ACK, FAIL,
// LEASE, ...) use the space already reserved, down to a floor. The space is tried again at
// most once a second (retry_space(), and every batch), and space_low() clears by itself
// once the disk has room. A single round of the owner's loop that appends more than the
// space ahead can still hit ENOSPC on the write itself: that one is fail-stop.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/storage/file_io.hpp"
#include "conveyor/storage/log_directory.hpp"
#include "conveyor/storage/log_format.hpp"
#include "conveyor/storage/segment_writer.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace conveyor::storage {

enum class fsync_mode : std::uint8_t { always, everysec, no };

std::string_view to_string(fsync_mode m) noexcept;
std::optional<fsync_mode> parse_fsync_mode(std::string_view s) noexcept;

struct log_options {
    std::string directory;
    fsync_mode fsync = fsync_mode::always;
    std::uint64_t segment_target_bytes = std::uint64_t{64} * 1024 * 1024;
    std::uint32_t max_frame_len = default_max_frame_len;
    std::uint64_t preallocate_chunk = std::uint64_t{1} << 20;  // 0: no space ahead
    // While the disk is full: room admit() never gives away (for the records the core writes
    // by itself: lease expiries, retries coming due, result expiries), and how often the
    // space is tried again.
    std::uint64_t space_floor = std::uint64_t{64} * 1024;
    std::chrono::milliseconds space_retry{1000};
    // `always`: a synced kick with at least this many bytes pending goes to the sync thread
    // (see the top). 0: never (every batch inline).
    std::size_t handoff_bytes = std::size_t{256} * 1024;
};

// What a change is, for admit() while the disk is full.
enum class change_kind : std::uint8_t {
    adds,      // adds work (ENQUEUE, pushes): refused while space_low()
    finishes,  // works on existing tasks (ACK, FAIL, LEASE, ...): uses the reserved space
};

struct recovery_result {
    std::error_code error;  // an I/O error while reading or cutting the log
    std::string error_path;
    log_outcome outcome = log_clean{};  // torn_tail: it was cut; damage: nothing was changed
    std::size_t records = 0;            // records replayed
    std::size_t segments = 0;
    std::uint64_t bytes = 0;  // size of the log after the cut
    std::uint64_t next_sequence = 1;

    bool ok() const noexcept { return !error && !std::holds_alternative<log_damage>(outcome); }
};

struct log_stats {
    fsync_mode fsync = fsync_mode::always;
    std::uint64_t log_bytes = 0;  // every segment, as written to the OS
    std::size_t segments = 0;
    std::uint64_t current_sequence = 0;
    std::uint64_t records_appended = 0;
    std::uint64_t records_released = 0;
    std::uint64_t fsyncs = 0;
    std::int64_t last_fsync_us = -1;  // -1: none yet
    std::int64_t max_fsync_us = 0;
    std::uint64_t pending_bytes = 0;
    std::uint64_t room_bytes = 0;     // zero-filled space ahead of the records
    std::uint64_t reserve_bytes = 0;  // the owner's reserve (set_reserve)
    bool space_low = false;
    std::uint64_t space_shortages = 0;  // times the disk had no room for space ahead
    std::error_code failure;
    std::string failure_path;
};

// Compaction. A record is superseded once its task no longer exists (acked and forgotten,
// popped, purged, deleted): replaying the log without it rebuilds the same state. A pass
// covers the closed segments (never the one being written) oldest first:
//   1. read them and collect the ids of the tasks they mention;
//   2. ask the owner which of those tasks still exist (liveness_fn, answered on the owner's
//      thread), and wait until the log has released the owner's position at that moment, so
//      every change that ended a task is durable before its history is dropped;
//   3. rewrite each segment that holds superseded records, oldest first, without them (temp
//      file, fsync, rename over the segment, fsync the directory); QPURGE/DEL records are
//      kept unless nothing before them in the log was kept;
//   4. remove the oldest segments once they hold no record.
// Step 1 notes each record's id per segment (up to a million records a pass), so step 3 reads
// again only the segments it rewrites: an oldest segment that keeps nothing is removed, one
// that drops nothing is left, by those notes alone.
// Why it is safe at every step (a crash between two rewrites included): for a task that no
// longer exists, what remains after any step is a suffix of its history, and replaying a
// suffix that lacks the enqueue does nothing (apply ignores records of unknown tasks). A
// task that exists keeps every record. The records that end a task come after the others.
struct liveness_answer {
    std::vector<char> live;      // one flag per id asked
    std::uint64_t position = 0;  // appended() when the owner answered
};
// Owner-provided: which of `ids` still exist. nullopt when the owner is shutting down.
using liveness_fn = std::function<std::optional<liveness_answer>(std::vector<std::string> ids)>;

struct compaction_stats {
    std::uint64_t passes = 0;
    std::uint64_t segments_rewritten = 0;
    std::uint64_t segments_removed = 0;
    std::uint64_t records_dropped = 0;
    std::uint64_t bytes_reclaimed = 0;
    std::int64_t last_pass_ms = -1;
    std::uint64_t appended_at_last_pass = 0;
    std::string last_error;
};

class durable_log {
public:
    durable_log(file_io& io, log_options options);
    ~durable_log();
    durable_log(const durable_log&) = delete;
    durable_log& operator=(const durable_log&) = delete;

    // Reads every segment in order, handing each record to `on_record`; `on_progress` (may be
    // empty) is called every 65,536 records with the count so far. A torn tail is cut off
    // (truncated, or the file removed when even its header is torn); damage is reported and
    // left alone. Call once, before start() (which creates recovery's next_sequence).
    recovery_result recover(const record_callback& on_record,
                            const std::function<void(std::size_t records)>& on_progress = {});

    // Creates the next segment and starts the storage thread (not under `always`).
    // `on_released` is called each time released() moves or the log fails: on the storage
    // thread (it must only hand the news to the owner's thread, never call back into this
    // object), or under `always` from inside kick().
    std::error_code start(std::function<void()> on_released);

    // Owner thread. Encodes `r` into the pending batch. Errors: log_failed (fail-stop),
    // record_too_large / bad_record (nothing appended). The storage thread is not woken:
    // call kick() once the owner has run whatever else is ready (the records of every client
    // served in this round then share one write and one fsync, as Redis's beforeSleep does).
    std::error_code append(const core::record& r);
    // `sync` (only read under `always`): false writes the batch without an fdatasync; see the
    // top. A kick with nothing pending and `sync` still syncs what earlier kicks left unsynced.
    void kick(bool sync = true);
    // Bytes appended since the last kick: the owner ends a round early past a limit, so one
    // client streaming large messages cannot grow a batch (and delay every reply) unbounded.
    std::size_t pending_bytes() const noexcept {
        return pending_bytes_.load(std::memory_order_relaxed);
    }
    // Owner thread, under `always`: records written by kick(false) and not yet synced (the
    // writer is the owner's there; in the other modes released() follows every write).
    // False while the sync thread holds a hand-off (it syncs everything it writes).
    bool unsynced() const;
    bool is_inline() const noexcept { return inline_; }
    std::uint64_t appended() const noexcept { return appended_; }
    std::uint64_t released() const noexcept { return released_.load(std::memory_order_acquire); }
    bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

    // Disk full (see the top). Owner thread. admit() says whether a change whose records take
    // about `bytes` may go ahead: {} or storage_errc::no_space.
    std::error_code admit(change_kind kind, std::size_t bytes) const;
    bool space_low() const noexcept { return space_low_.load(std::memory_order_acquire); }
    // Space kept ahead on top of one preallocate chunk (e.g. a few records per live task).
    void set_reserve(std::uint64_t bytes) noexcept {
        reserve_.store(bytes, std::memory_order_relaxed);
    }
    // While space_low(): tries again for space (inline, or on the storage thread), at most
    // once per options().space_retry.
    void retry_space();

    // Writes and (in every mode) syncs what is pending, then joins the storage thread.
    void stop();
    bool stopping() const noexcept { return stop_compactor_.load(std::memory_order_acquire); }

    // Starts the compaction thread: a pass runs when the closed segments hold at least one
    // segment target of bytes and twice what the last pass left (so each byte is rewritten a
    // bounded number of times).
    void start_compactor(liveness_fn live);
    // One pass on the calling thread (tests, tools). Errors leave the log as it was.
    std::error_code compact(const liveness_fn& live);

    log_stats stats() const;
    compaction_stats compaction() const;
    const log_options& options() const noexcept { return options_; }

private:
    class compaction_pass;  // compact()'s steps (compaction.cpp)
    friend class compaction_pass;
    void run();
    void run_handoff();  // the sync thread under `always`
    std::error_code sync_file(const std::string& path);
    void run_compactor(liveness_fn live);
    // `keep` gets each record's task id (empty for purge and delete_queue). With `removable`
    // (every older segment is gone) a segment that keeps nothing is removed, not rewritten.
    struct rewrite_outcome {
        std::uint64_t saved = 0;    // bytes the segment lost
        std::uint64_t dropped = 0;  // records dropped
        bool removed = false;
    };
    std::error_code rewrite_segment(const std::string& path, std::uint64_t sequence,
                                    const std::string& bytes,
                                    const std::function<bool(std::string_view id)>& keep,
                                    bool removable, rewrite_outcome& outcome);
    bool process_batch(bool stopping, bool sync = true);
    std::int64_t write_batch(std::size_t records, bool stopping, bool sync,
                             std::chrono::steady_clock::time_point now, std::error_code& ec);
    // After a batch: rotation when due and space ahead, at most once a second while the disk
    // is full. Errors other than no_space are failures.
    std::error_code keep_space(std::chrono::steady_clock::time_point now);
    // How segments are read back (recovery, compaction): frames up to the larger of this
    // server's limit and the default, so a log written with a larger --max-payload still reads.
    scan_options read_options() const noexcept;

    file_io& io_;
    log_options options_;
    segment_writer writer_;
    std::function<void()> on_released_;
    std::thread thread_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string pending_;  // encoded frames not yet taken by the storage thread
    std::size_t pending_records_ = 0;
    bool stopping_ = false;
    bool kicked_ = false;
    bool retry_space_ = false;
    bool inline_ = false;
    bool handoff_ = false;  // `always`: the sync thread holds the writer
    std::string batch_;     // the batch being written (storage thread, or owner when inline)
    std::chrono::steady_clock::time_point last_sync_ = std::chrono::steady_clock::now();
    log_stats stats_;  // guarded by mu_ (the thread updates it after each batch)

    std::uint64_t next_sequence_ = 1;  // set by recover(), used by start()
    std::uint64_t appended_ = 0;       // written by the owner under mu_; appended() is owner-only
    std::atomic<std::uint64_t> released_{0};
    std::atomic<std::size_t> pending_bytes_{0};
    std::atomic<bool> failed_{false};
    std::atomic<bool> space_low_{false};
    std::atomic<std::uint64_t> room_{0};  // writer_.room() after the last batch
    std::atomic<std::uint64_t> reserve_{0};
    std::chrono::steady_clock::time_point last_space_try_{};  // writing thread
    std::uint64_t closed_segments_bytes_ = 0;                 // guarded by mu_

    std::thread compactor_;
    std::atomic<bool> stop_compactor_{false};
    std::condition_variable compactor_cv_;
    compaction_stats compaction_;                            // guarded by mu_
    std::uint64_t closed_after_pass_ = 0;                    // guarded by mu_
    std::chrono::steady_clock::time_point last_pass_end_{};  // compactor thread
    std::mutex compact_mu_;                                  // one pass at a time
};

}  // namespace conveyor::storage
