#include "conveyor/storage/durable_log.hpp"

#include "conveyor/storage/errors.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

namespace conveyor::storage {

using std::chrono::steady_clock;

std::string_view to_string(fsync_mode m) noexcept {
    switch (m) {
        case fsync_mode::always:
            return "always";
        case fsync_mode::everysec:
            return "everysec";
        case fsync_mode::no:
            return "no";
    }
    return "always";
}

std::optional<fsync_mode> parse_fsync_mode(std::string_view s) noexcept {
    if (s == "always") return fsync_mode::always;
    if (s == "everysec") return fsync_mode::everysec;
    if (s == "no") return fsync_mode::no;
    return std::nullopt;
}

durable_log::durable_log(file_io& io, log_options options)
    : io_(io),
      options_(std::move(options)),
      writer_(io, writer_options{options_.directory, options_.segment_target_bytes,
                                 options_.max_frame_len, options_.preallocate_chunk}) {
    stats_.fsync = options_.fsync;
}

durable_log::~durable_log() {
    stop();
}

scan_options durable_log::read_options() const noexcept {
    return scan_options{std::max(options_.max_frame_len, default_max_frame_len)};
}

std::error_code durable_log::sync_file(const std::string& path) {
    const io_result<file_handle> f = io_.open_append(path);
    if (f.error) return f.error;
    const std::error_code ec = io_.sync(f.value);
    const std::error_code closed = io_.close(f.value);
    return ec ? ec : closed;
}

recovery_result durable_log::recover(const record_callback& on_record,
                                     const std::function<void(std::size_t)>& on_progress) {
    recovery_result result;
    std::size_t count = 0;
    const directory_scan scan = scan_log_directory(
        io_, options_.directory,
        [&](const core::record& r) {
            on_record(r);
            if ((++count & 0xffff) == 0 && on_progress) on_progress(count);
        },
        read_options());
    if (!scan.ok()) {
        result.error = scan.error;
        result.error_path = scan.error_path;
        return result;
    }
    result.records = scan.records;
    result.outcome = scan.outcome;
    result.segments = scan.segments.size();
    for (const auto& s : scan.segments) result.bytes += s.bytes;
    result.next_sequence = scan.segments.empty() ? 1 : scan.segments.back().sequence + 1;
    if (const auto* torn = std::get_if<log_torn_tail>(&scan.outcome)) {
        std::error_code ec;
        if (torn->offset < segment_header_size) {
            // Not even the header was made durable: the file never held a record.
            ec = io_.remove(torn->path);
            if (!ec) ec = io_.sync_directory(options_.directory);
            if (!ec) {
                --result.segments;
                result.next_sequence = scan.segments.back().sequence;
                result.bytes -= torn->offset;  // the header bytes went with the file
            }
        } else {
            ec = io_.truncate(torn->path, torn->offset);
        }
        if (ec) {
            result.error = ec;
            result.error_path = torn->path;
            return result;
        }
        result.bytes -= torn->bytes_dropped;
    }
    // The newest segment may end in records that were written but never synced (a crash under
    // everysec or no, or between a write and its fsync): they were just replayed, so they are
    // made durable before anything is built on them. Otherwise a power loss after this start
    // could cut a segment that is no longer the newest, which reads as damage. (A cut torn
    // tail or zero tail is synced by the truncation itself.)
    if (!scan.segments.empty() && !std::holds_alternative<log_torn_tail>(scan.outcome)) {
        if (std::error_code ec = sync_file(scan.segments.back().path)) {
            result.error = ec;
            result.error_path = scan.segments.back().path;
            return result;
        }
    }
    // Zeros after the last record (space the writer had filled ahead) are given back.
    for (const auto& seg : scan.segments) {
        if (seg.zero_tail == 0) continue;
        if (std::error_code ec = io_.truncate(seg.path, seg.bytes - seg.zero_tail)) {
            result.error = ec;
            result.error_path = seg.path;
            return result;
        }
        result.bytes -= seg.zero_tail;
    }
    next_sequence_ = result.next_sequence;
    std::lock_guard lk(mu_);
    stats_.log_bytes = result.bytes;
    stats_.segments = result.segments;
    closed_segments_bytes_ = result.bytes;
    return result;
}

std::error_code durable_log::start(std::function<void()> on_released) {
    // Always a fresh segment, one past the newest on disk (recover() cut any torn tail).
    const std::uint64_t next = next_sequence_;
    if (std::error_code ec = writer_.open(next)) return ec;
    // Space ahead before the first record, as after every batch: a disk that is already full
    // (or fills before the first batch) makes the log space_low() instead of failing the
    // first write.
    if (std::error_code ec = keep_space(steady_clock::now())) return ec;
    room_.store(writer_.room(), std::memory_order_release);
    if (space_low_.load(std::memory_order_relaxed)) ++stats_.space_shortages;
    on_released_ = std::move(on_released);
    {
        std::lock_guard lk(mu_);
        stats_.current_sequence = next;
        stats_.segments += 1;
        stats_.log_bytes = closed_segments_bytes_ + writer_.segment_bytes();
    }
    // `always` writes and syncs on the owner's thread (see the header); the others on a thread.
    inline_ = options_.fsync == fsync_mode::always;
    if (!inline_) {
        thread_ = std::thread([this] { run(); });
    } else if (options_.handoff_bytes > 0) {
        thread_ = std::thread([this] { run_handoff(); });
    }
    return {};
}

bool durable_log::unsynced() const {
    if (!inline_) return false;
    std::lock_guard lk(mu_);
    return !handoff_ && writer_.unsynced();
}

std::error_code durable_log::append(const core::record& r) {
    std::lock_guard lk(mu_);
    if (failed_.load(std::memory_order_relaxed)) return storage_errc::log_failed;
    if (std::error_code ec = append_record_frame(r, pending_, options_.max_frame_len)) return ec;
    pending_bytes_.store(pending_.size(), std::memory_order_relaxed);
    ++pending_records_;
    ++appended_;
    return {};
}

void durable_log::kick(bool sync) {
    if (inline_) {
        if (failed()) return;
        {
            std::lock_guard lk(mu_);
            if (handoff_) {
                kicked_ = true;  // the sync thread takes this batch after its own
                return;
            }
            if (sync && thread_.joinable() && pending_.size() >= options_.handoff_bytes) {
                handoff_ = true;
                cv_.notify_one();
                return;
            }
        }
        process_batch(false, sync);
        return;
    }
    {
        std::lock_guard lk(mu_);
        kicked_ = true;
    }
    cv_.notify_one();
}

void durable_log::run() {
    while (true) {
        bool stopping = false;
        {
            std::unique_lock lk(mu_);
            auto has_work = [&] {
                return stopping_ || retry_space_ || (kicked_ && !pending_.empty());
            };
            if (options_.fsync == fsync_mode::everysec && writer_.unsynced()) {
                cv_.wait_until(lk, last_sync_ + std::chrono::seconds(1), has_work);
            } else {
                cv_.wait(lk, has_work);
            }
            stopping = stopping_;
        }
        if (!process_batch(stopping)) return;
        if (stopping) {
            std::lock_guard lk(mu_);
            if (pending_.empty()) return;
        }
    }
}

// `always`: writes and syncs the batches handed over, one after another while the owner keeps
// kicking, then gives the writer back (handoff_ = false) and waits for the next hand-off.
void durable_log::run_handoff() {
    std::unique_lock lk(mu_);
    while (true) {
        cv_.wait(lk, [&] { return stopping_ || handoff_; });
        if (!handoff_) return;  // stopping; stop() writes what is left
        lk.unlock();
        const bool ok = process_batch(false, true);
        lk.lock();
        // process_batch() cleared kicked_: set again, the owner kicked meanwhile.
        if (ok && kicked_ && !pending_.empty() && !stopping_) continue;
        handoff_ = false;
        if (!ok) return;
    }
}

// Writes the batch taken by process_batch and syncs it when the mode says so. Returns the
// fsync's duration in µs, -1 when there was none.
std::int64_t durable_log::write_batch(std::size_t records, bool stopping, bool sync,
                                      steady_clock::time_point now, std::error_code& ec) {
    if (!batch_.empty()) {
        ec = writer_.write_frames(batch_, records);
        batch_.clear();
    }
    std::int64_t sync_us = -1;
    const bool sync_due =
        (options_.fsync == fsync_mode::always && sync) || stopping ||
        (options_.fsync == fsync_mode::everysec && now - last_sync_ >= std::chrono::seconds(1));
    if (!ec && sync_due && writer_.unsynced()) {
        ec = writer_.sync();
        const auto after = steady_clock::now();
        sync_us = std::chrono::duration_cast<std::chrono::microseconds>(after - now).count();
        last_sync_ = after;
    } else if (!ec && inline_ && writer_.unsynced()) {
        // `always`, written without a sync (nobody waited): the disk starts on it now, so the
        // sync that comes (the next round with a waiter, or within a second) is not one long
        // stall for all of it. (everysec and no keep their own pace.)
        writer_.start_writeback();
    }
    return sync_us;
}

// Takes everything pending, writes it, syncs as the mode says, rotates when due, and
// publishes the new released() position. False once the log has failed.
bool durable_log::process_batch(bool stopping, bool sync) {
    std::unique_lock lk(mu_);
    kicked_ = false;
    retry_space_ = false;
    batch_.swap(pending_);
    pending_.clear();
    pending_bytes_.store(0, std::memory_order_relaxed);
    const std::size_t records = pending_records_;
    pending_records_ = 0;
    const std::uint64_t upto = appended_;
    lk.unlock();

    std::error_code ec;
    const auto now = steady_clock::now();
    const std::int64_t sync_us = write_batch(records, stopping, sync, now, ec);
    const std::uint64_t sequence_before = writer_.sequence();
    const std::uint64_t bytes_before = writer_.segment_bytes();
    const bool was_low = space_low_.load(std::memory_order_relaxed);
    if (!ec && !stopping) ec = keep_space(now);
    const std::uint64_t rotated_bytes = writer_.sequence() != sequence_before ? bytes_before : 0;
    room_.store(writer_.room(), std::memory_order_release);

    lk.lock();
    if (!was_low && space_low_.load(std::memory_order_relaxed)) ++stats_.space_shortages;
    if (ec) {
        stats_.failure = ec;
        stats_.failure_path = writer_.segment_path(writer_.sequence());
        failed_.store(true, std::memory_order_release);
        lk.unlock();
        if (on_released_) on_released_();
        return false;
    }
    if (sync_us >= 0) {
        ++stats_.fsyncs;
        stats_.last_fsync_us = sync_us;
        if (sync_us > stats_.max_fsync_us) stats_.max_fsync_us = sync_us;
    }
    if (rotated_bytes > 0) {
        closed_segments_bytes_ += rotated_bytes;
        ++stats_.segments;
        stats_.current_sequence = writer_.sequence();
    }
    stats_.log_bytes = closed_segments_bytes_ + writer_.segment_bytes();
    // Under `always` only synced records are released; a rotation syncs the old segment, and
    // an fdatasync covers every earlier write to the file.
    const bool durable = !inline_ || !writer_.unsynced();
    if (durable && upto != released_.load(std::memory_order_relaxed)) {
        released_.store(upto, std::memory_order_release);
        lk.unlock();
        if (on_released_) on_released_();
    }
    return true;
}

std::error_code durable_log::keep_space(steady_clock::time_point now) {
    const bool low = space_low_.load(std::memory_order_relaxed);
    if (low && now - last_space_try_ < options_.space_retry) return {};
    bool short_of_space = false;
    auto note = [&](std::error_code ec) {
        if (ec == storage_errc::no_space) {
            short_of_space = true;
            return std::error_code{};
        }
        return ec;
    };
    if (writer_.rotation_due()) {
        if (std::error_code ec = note(writer_.rotate())) return ec;
    }
    const std::uint64_t room =
        options_.preallocate_chunk + reserve_.load(std::memory_order_relaxed);
    if (std::error_code ec = note(writer_.reserve(room, 4 * options_.preallocate_chunk))) return ec;
    if (short_of_space) last_space_try_ = now;
    space_low_.store(short_of_space, std::memory_order_release);
    return {};
}

std::error_code durable_log::admit(change_kind kind, std::size_t bytes) const {
    if (!space_low_.load(std::memory_order_acquire)) return {};
    if (kind == change_kind::adds) return storage_errc::no_space;
    std::lock_guard lk(mu_);
    const std::uint64_t need = pending_.size() + bytes + options_.space_floor;
    if (room_.load(std::memory_order_acquire) < need) return storage_errc::no_space;
    return {};
}

void durable_log::retry_space() {
    if (!space_low() || failed()) return;
    if (inline_) {
        {
            std::lock_guard lk(mu_);
            if (handoff_) return;  // the sync thread's batch tries again for space
        }
        process_batch(false);
        return;
    }
    {
        std::lock_guard lk(mu_);
        retry_space_ = true;
    }
    cv_.notify_one();
}

void durable_log::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        stop_compactor_.store(true, std::memory_order_release);
    }
    compactor_cv_.notify_one();
    if (compactor_.joinable()) compactor_.join();
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    if (inline_ && writer_.is_open() && !failed()) process_batch(true);
    if (!failed()) writer_.trim();
    writer_.close();
}

log_stats durable_log::stats() const {
    std::lock_guard lk(mu_);
    log_stats s = stats_;
    s.records_appended = appended_;
    s.records_released = released();
    s.pending_bytes = pending_.size();
    s.room_bytes = room_.load(std::memory_order_acquire);
    s.reserve_bytes = reserve_.load(std::memory_order_relaxed);
    s.space_low = space_low();
    return s;
}

}  // namespace conveyor::storage
