#include <conveyor/runtime/broker_service.hpp>

#include <stdexcept>

#include <conveyor/runtime/log_limiter.hpp>

#include <conveyor/storage/errors.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <malloc.h>

#if defined(__SANITIZE_ADDRESS__)
#define CONVEYOR_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONVEYOR_UNDER_ASAN 1
#endif
#endif
#ifndef CONVEYOR_UNDER_ASAN
#define CONVEYOR_UNDER_ASAN 0
#endif
#if CONVEYOR_UNDER_ASAN
// From the sanitizer runtime (sanitizer/allocator_interface.h, which g++ does not ship).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <algorithm>
#include <cstdlib>
#include <future>
#include <limits>
#include <random>
#include <thread>

namespace asio = boost::asio;

namespace conveyor::server {

using std::chrono::microseconds;
using std::chrono::steady_clock;

core::broker_config make_broker_config(const server_config& config) {
    core::broker_config c;
    c.default_lease_ms = config.default_lease_ms;
    c.default_retries = config.default_retries;
    c.result_ttl_ms = config.result_ttl_ms;
    c.seed = std::random_device{}();
    return c;
}

broker_service::broker_service(asio::any_io_executor executor, const server_config& config)
    : executor_(executor),
      config_(config),
      access_(config),
      broker_(make_broker_config(config), this),
      deadline_timer_(executor, steady_clock::time_point::max()),
      housekeeping_timer_(executor) {}

namespace {

std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t out = 0;
    if (!__builtin_add_overflow(a, b, &out)) return out;
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
}

}  // namespace

steady_clock::time_point steady_from_mono(std::int64_t mono_us, std::int64_t offset_us) noexcept {
    using std::chrono::duration_cast;
    constexpr std::int64_t max_us =
        duration_cast<microseconds>(steady_clock::duration::max()).count();
    constexpr std::int64_t min_us =
        duration_cast<microseconds>(steady_clock::duration::min()).count();
    std::int64_t us = 0;
    if (__builtin_sub_overflow(mono_us, offset_us, &us)) {
        return offset_us < 0 ? steady_clock::time_point::max() : steady_clock::time_point::min();
    }
    if (us >= max_us) return steady_clock::time_point::max();
    if (us <= min_us) return steady_clock::time_point::min();
    return steady_clock::time_point(duration_cast<steady_clock::duration>(microseconds(us)));
}

core::instant broker_service::now() const {
    using namespace std::chrono;
    return core::instant{
        saturating_add(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count(),
                       mono_offset_us_),
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()};
}

steady_clock::time_point broker_service::to_steady(std::int64_t mono_us) const {
    return steady_from_mono(mono_us, mono_offset_us_);
}

namespace {

std::string describe_outcome(const storage::log_outcome& outcome) {
    if (const auto* d = std::get_if<storage::log_damage>(&outcome)) {
        return "log damaged in " + d->path + " at offset " + std::to_string(d->offset) + ": " +
               d->reason + "; " + std::to_string(d->records_after_estimate) + " records (" +
               std::to_string(d->bytes_after) +
               " bytes) after it would be lost. Refusing to start. Inspect it with `conveyor "
               "check-data <dir>`; `conveyor check-data --repair <dir>` cuts the log there.";
    }
    return {};
}

}  // namespace

std::optional<std::string> broker_service::open_log(storage::file_io& io,
                                                    std::function<void()> on_fatal) {
    using namespace std::chrono;
    storage::log_options options;
    options.directory = config_.data_dir;
    switch (config_.fsync_mode) {  // parsed at start (config.cpp): no fallback here
        case fsync_policy::always:
            options.fsync = storage::fsync_mode::always;
            break;
        case fsync_policy::everysec:
            options.fsync = storage::fsync_mode::everysec;
            break;
        case fsync_policy::no:
            options.fsync = storage::fsync_mode::no;
            break;
    }
    options.segment_target_bytes = static_cast<std::uint64_t>(config_.log_segment_bytes);
    // Room for the largest payload plus the record's other fields (id, name, result ...).
    options.max_frame_len = static_cast<std::uint32_t>(
        std::min<std::int64_t>(config_.max_payload + 1024 * 1024, 0xffff0000));
    // Space ahead (disk full, docs/storage-format.md): a quarter segment, 4 KiB to 1 MiB, at
    // a time; a floor of a quarter of that.
    options.preallocate_chunk =
        std::clamp<std::uint64_t>(options.segment_target_bytes / 4, 4096, std::uint64_t{1} << 20);
    options.space_floor = std::min<std::uint64_t>(64 * 1024, options.preallocate_chunk / 4);
    options.space_retry = milliseconds(500);
    // Power-loss tests of the sync thread (--enable-debug-command yes only): the batch size
    // from which a synced `always` batch is handed to it (test_amqp_crash.py uses 1: all).
    if (debug_io_ != nullptr) {
        if (const char* v = std::getenv("CONVEYOR_DEBUG_HANDOFF_BYTES")) {
            options.handoff_bytes = static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
        }
    }
    io_ = &io;
    log_ = std::make_unique<storage::durable_log>(io, options);
    on_fatal_ = std::move(on_fatal);

    const auto started = steady_clock::now();
    auto last_progress = started;
    core::instant last{0, 0};
    std::size_t out_of_range = 0;
    auto result = log_->recover(
        [&](const core::record& r) {
            const core::instant& at = core::record_time(r);
            if (at.mono_us > last.mono_us) last.mono_us = at.mono_us;
            if (at.wall_ms > last.wall_ms) last.wall_ms = at.wall_ms;
            if (!core::record_times_in_range(r) && ++out_of_range <= 10) {
                // replay() clamps it; a log written before the range existed may hold one.
                spdlog::warn(
                    "log record '{}' of task '{}' holds a time more than 100 years "
                    "after its own: clamped to 100 years (docs/storage-format.md)",
                    core::record_name(r), core::record_task_id(r).substr(0, 256));
            }
            broker_.replay(r);
        },
        [&](std::size_t records) {
            auto t = steady_clock::now();
            if (t - last_progress < seconds(1)) return;
            last_progress = t;
            spdlog::info("recovering: {} records replayed ({:.1f} s)", records,
                         duration<double>(t - started).count());
        });
    if (result.error) {
        return "cannot read the log in '" + config_.data_dir + "' (" + result.error_path +
               "): " + result.error.message();
    }
    if (!result.ok()) return describe_outcome(result.outcome);
    if (const auto* torn = std::get_if<storage::log_torn_tail>(&result.outcome)) {
        spdlog::warn("log ended in a torn record: cut {} at offset {} ({} bytes dropped)",
                     torn->path, torn->offset, torn->bytes_dropped);
    }
    // The monotonic clock resumes where the log left it, plus the downtime as the wall clock
    // measured it (never negative): leases, delays and TTLs keep their remaining time.
    const auto steady_now = duration_cast<microseconds>(steady_clock::now().time_since_epoch());
    const auto wall_now = duration_cast<milliseconds>(system_clock::now().time_since_epoch());
    if (result.records > 0) {
        const std::int64_t downtime_ms =
            std::clamp<std::int64_t>(wall_now.count() - last.wall_ms, 0, core::max_duration_ms);
        mono_offset_us_ =
            saturating_add(saturating_add(last.mono_us, downtime_ms * 1000), -steady_now.count());
        recovery_.downtime_ms = downtime_ms;
    }
    recovery_.records = result.records;
    recovery_.segments = result.segments;
    recovery_.bytes = result.bytes;
    recovery_.duration_ms = duration_cast<milliseconds>(steady_clock::now() - started).count();
    if (out_of_range > 0) {
        spdlog::warn("recovery clamped {} log records with times out of range", out_of_range);
    }
    if (result.records > 0) {
        spdlog::info("recovered {} records from {} segments ({} bytes) in {} ms", result.records,
                     result.segments, result.bytes, recovery_.duration_ms);
    }

    const auto core_thread = std::this_thread::get_id();
    auto ec = log_->start([this, core_thread] {
        // Storage or sync thread: hand the news to the core thread. (Inline, before_sleep
        // calls on_log_released itself.)
        if (std::this_thread::get_id() != core_thread)
            asio::post(executor_, [this] { on_log_released(); });
    });
    if (ec) {
        return "cannot create a log segment in '" + config_.data_dir + "': " + ec.message();
    }
    broker_.set_record_sink([this](const core::record& r) {
        if (log_failed_) return;
        kick_due_ = true;
        if (auto ec = log_->append(r)) {
            if (ec == storage::storage_errc::log_failed) return;  // reported by on_log_released
            // A record the log cannot hold (too large) must not be acknowledged either.
            spdlog::critical("cannot log a {} record: {}; stopping", core::record_name(r),
                             ec.message());
            log_failed_ = true;
            asio::post(executor_, [this] { on_log_released(); });
        }
    });
    // AMQP deliveries died with their connections: their tasks are ready again at once.
    if (const auto released = broker_.release_session_leases(now()); released > 0) {
        spdlog::info("released {} AMQP deliveries left unacknowledged when the broker stopped",
                     released);
    }
    log_->start_compactor(
        [this](std::vector<std::string> ids) { return ask_liveness(std::move(ids)); });
    return std::nullopt;
}

// Compactor thread: the core answers on its own thread; this thread waits for the answer.
std::optional<storage::liveness_answer> broker_service::ask_liveness(std::vector<std::string> ids) {
    struct question {
        std::vector<std::string> ids;
        storage::liveness_answer answer;
        std::promise<void> done;
    };
    auto q = std::make_shared<question>();
    q->ids = std::move(ids);
    auto answered = q->done.get_future();
    asio::post(executor_, [this, q] {
        q->answer.live.reserve(q->ids.size());
        for (const auto& id : q->ids) q->answer.live.push_back(broker_.contains(id) ? 1 : 0);
        q->answer.position = log_->appended();
        q->done.set_value();
    });
    while (answered.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
        if (log_->stopping()) return std::nullopt;
    }
    return std::move(q->answer);
}

void broker_service::before_sleep() {
    if (!log_) return;
    // Under `always` the batch is synced when a reply waits for the log (a RESP reply, an AMQP
    // confirm), or once a second (housekeeping); otherwise it is only written: nobody has
    // been told it is durable, and the next sync covers it (durable_log.hpp).
    const bool sync = sync_due_ || !release_waits_.empty();
    if (!kick_due_ && !(sync && log_->unsynced())) return;
    kick_due_ = false;
    if (sync) sync_due_ = false;
    set_finishing_reserve();  // covers the tasks this batch adds when it keeps space after it
    log_->kick(sync);
    // Inline (no storage thread): the batch is already written and synced.
    if (log_->is_inline()) on_log_released();
}

void broker_service::close_log() {
    if (log_) log_->stop();
}

void broker_service::wait_release(std::uint64_t position, asio::steady_timer& timer) {
    timer.expires_at(steady_clock::time_point::max());
    release_waits_.emplace_back(position, &timer);
}

void broker_service::forget_release_wait(asio::steady_timer& timer) {
    auto it = std::find_if(release_waits_.begin(), release_waits_.end(),
                           [&](const auto& w) { return w.second == &timer; });
    if (it != release_waits_.end()) release_waits_.erase(it);
}

void broker_service::stop_on_fault(const std::string& what) {
    // As a failed log write: nothing waiting is acknowledged, sessions write nothing more.
    log_failed_ = true;
    for (auto& w : release_waits_) w.second->cancel();
    release_waits_.clear();
    spdlog::critical(
        "{}; no change after the failure was acknowledged. Stopping: restart to "
        "recover every acknowledged change.",
        what);
    if (auto fatal = std::move(on_fatal_)) {
        on_fatal_ = nullptr;
        fatal();
    }
}

void broker_service::on_log_released() {
    if (!log_) return;
    if (log_->failed()) log_failed_ = true;
    if (log_failed_) {
        // Nothing waiting is ever acknowledged: every waiter wakes to close its connection.
        for (auto& w : release_waits_) w.second->cancel();
        release_waits_.clear();
        if (on_fatal_) {
            auto fatal = std::move(on_fatal_);
            on_fatal_ = nullptr;
            auto st = log_->stats();
            spdlog::critical(
                "writing the log failed ({}: {}); no change after the failure was acknowledged. "
                "Stopping: restart to recover every acknowledged change.",
                st.failure_path.empty() ? config_.data_dir : st.failure_path,
                st.failure ? st.failure.message() : std::string("record not loggable"));
            fatal();
        }
        return;
    }
    note_space();
    // Positions were queued in append order, so the released ones are at the front.
    const std::uint64_t released = log_->released();
    while (!release_waits_.empty() && release_waits_.front().first <= released) {
        release_waits_.front().second->cancel();
        release_waits_.pop_front();
    }
}

core::waiter_id broker_service::add_waiter(waiting_client& client) {
    auto id = next_waiter_++;
    waiters_.emplace(id, &client);
    ++counters_.blocked_clients;
    return id;
}

void broker_service::forget_waiter(core::waiter_id id) {
    if (take_waiter(id)) broker_.cancel_wait(id);
}

void broker_service::complete_deferred(core::waiter_id w,
                                       const std::function<void(waiting_client&)>& finish) {
    if (auto* c = take_waiter(w)) finish(*c);
}

waiting_client* broker_service::take_waiter(core::waiter_id w) {
    auto it = waiters_.find(w);
    if (it == waiters_.end()) return nullptr;
    auto* client = it->second;
    waiters_.erase(it);
    --counters_.blocked_clients;
    return client;
}

void broker_service::on_leased(core::waiter_id w, std::span<const core::leased_task> tasks) {
    if (auto* c = take_waiter(w)) c->on_leased(tasks);
}

void broker_service::on_popped(core::waiter_id w, std::string_view queue,
                               std::string_view payload) {
    if (auto* c = take_waiter(w)) c->on_popped(queue, payload);
}

void broker_service::on_result(core::waiter_id w, const core::task_view& task) {
    if (auto* c = take_waiter(w)) c->on_result(task);
}

void broker_service::deadlines_changed() {
    auto next = broker_.next_deadline();
    if (!next) return;
    auto at = to_steady(*next);
    // Moving the expiry cancels the pending wait; run_deadlines() then re-reads the deadline.
    if (at < deadline_timer_.expiry()) deadline_timer_.expires_at(at);
}

namespace {
void throw_if_injected(std::string& fault, std::string_view loop) {
    if (fault != loop) return;
    fault.clear();
    throw std::runtime_error("fault injected by DEBUG LOOP-FAULT");
}
}  // namespace

void broker_service::inject_loop_fault(std::string loop) {
    loop_fault_ = std::move(loop);
    deadline_timer_.cancel();  // the loops turn at once
    housekeeping_timer_.cancel();
}

asio::awaitable<void> broker_service::run_deadlines() {
    while (!stopped_) {
        throw_if_injected(loop_fault_, "deadline");
        auto next = broker_.next_deadline();
        deadline_timer_.expires_at(next ? to_steady(*next) : steady_clock::time_point::max());
        auto [ec] = co_await deadline_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopped_) break;
        if (ec == asio::error::operation_aborted) continue;  // re-armed earlier
        broker_.tick(now());
    }
}

// Once a second: a full disk is tried again, and its start and end are logged.
asio::awaitable<void> broker_service::run_housekeeping() {
    while (!stopped_) {
        housekeeping_timer_.expires_after(std::chrono::seconds(1));
        co_await housekeeping_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        throw_if_injected(loop_fault_, "housekeeping");
        flush_client_log();  // counts of client-caused log lines suppressed (log_limiter.hpp)
        if (stopped_ || !log_ || log_failed_) continue;
        set_finishing_reserve();
        if (log_->unsynced()) sync_due_ = true;  // written without a waiter: synced this round
        log_->retry_space();
        note_space();
        trim_when_quiet();
    }
}

// What finishing every live task will write (docs/storage-format.md, "Space ahead"), from the
// broker's counts at this moment: set before every batch, so the space the log keeps ahead
// after a batch covers the tasks that batch added (a once-a-second sample lags a burst, and
// the LEASE+ACKs of its last tasks then find the reserve used up). At most half a segment,
// as the space ahead lives in the current segment.
void broker_service::set_finishing_reserve() {
    const std::uint64_t need = broker_.live_tasks() * reserve_per_task +
                               2 * std::uint64_t{broker_.live_id_bytes()} + reserve_slack;
    log_->set_reserve(std::min<std::uint64_t>(need, log_->options().segment_target_bytes / 2));
}

// Once a second: after quiet_seconds_for_trim seconds without a change to the log, the memory
// malloc kept for reuse (server_main.cpp, tune_allocator) goes back to the system, once.
void broker_service::trim_when_quiet() {
    const std::uint64_t appended = log_->appended();
    if (appended != appended_at_last_check_) {
        appended_at_last_check_ = appended;
        quiet_seconds_ = 0;
        return;
    }
    if (++quiet_seconds_ != quiet_seconds_for_trim) return;
#if defined(__GLIBC__)
    ::malloc_trim(0);
#endif
}

// Logs when the disk fills up and when space returns (core thread: after each batch and
// once a second).
void broker_service::note_space() {
    const bool low = log_->space_low();
    if (low == space_low_logged_) return;
    space_low_logged_ = low;
    if (low) {
        spdlog::warn(
            "the disk of {} is full: ENQUEUE and pushes are refused (-MISCONF) until "
            "space returns; {} bytes are reserved for finishing tasks",
            config_.data_dir, log_->stats().room_bytes);
    } else {
        spdlog::info("space is back on the disk of {}: new tasks are accepted again",
                     config_.data_dir);
    }
}

void broker_service::stop() {
    stopped_ = true;
    deadline_timer_.cancel();
    housekeeping_timer_.cancel();
}

std::optional<std::string> broker_service::admit(client_state& client) {
    return access_.admit(client);
}

void broker_service::reload() {
    access_.reload();
}

std::size_t broker_service::memory_in_use() {
#if CONVEYOR_UNDER_ASAN
    // ASan's allocator replaces malloc's: mallinfo2() reads zeros under it.
    return __sanitizer_get_current_allocated_bytes();
#else
    const auto mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

bool broker_service::over_maxmemory() {
    if (config_.maxmemory_bytes <= 0) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now - memory_sampled_ >= std::chrono::milliseconds(1)) {
        memory_sampled_ = now;
        over_maxmemory_ = memory_in_use() > static_cast<std::size_t>(config_.maxmemory_bytes);
    }
    return over_maxmemory_;
}

}  // namespace conveyor::server
