// Owns the broker core on the server's single core thread: reads the clocks, drives the
// core's deadlines with one timer, and routes the core's wake-ups to the waiting sessions.
// Everything here runs on one executor (see server/THREADING.md); nothing is locked.
#pragma once

#include <conveyor/runtime/access_control.hpp>
#include <conveyor/runtime/client_state.hpp>
#include <conveyor/runtime/config.hpp>

#include <conveyor/core/broker.hpp>
#include <conveyor/storage/durable_log.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace conveyor::server {

// The steady_clock time of core mono time `mono_us`, where mono = steady + `offset_us`,
// saturating: a time past what steady_clock's duration holds is time_point::max() (a timer
// that never fires), one before it time_point::min(). The core keeps deadlines within 100
// years of the time they were made at (core::max_duration_ms); this guards the conversion
// against everything else (a recovered clock, a future bug), which would otherwise wrap into
// the past and fire the deadline timer forever.
std::chrono::steady_clock::time_point steady_from_mono(std::int64_t mono_us,
                                                       std::int64_t offset_us) noexcept;

// A client waiting in the core (a blocked LEASE, BLPOP or RESULT WAIT, an AMQP consumer)
// implements this to receive what it waits for. Only waiters that asked the core for pops
// (BLPOP/BRPOP) or results (RESULT WAIT) are ever sent on_popped or on_result.
class waiting_client {
public:
    virtual ~waiting_client() = default;
    virtual void on_leased(std::span<const core::leased_task> tasks) = 0;
    virtual void on_popped(std::string_view /*queue*/, std::string_view /*payload*/) {}
    virtual void on_result(const core::task_view& /*task*/) {}
};

struct server_counters {
    std::uint64_t connections_received = 0;
    std::uint64_t commands_processed = 0;
    std::uint64_t rejected_connections = 0;
    std::uint64_t oom_rejections = 0;  // ENQUEUE/LPUSH/RPUSH refused past --maxmemory
    std::uint64_t auth_failures = 0;   // AUTH / HELLO AUTH with a wrong password
    std::uint64_t noperm_rejections = 0;
    std::size_t connected_clients = 0;
    std::size_t blocked_clients = 0;
};

// What start-up recovery found, for the log and INFO persistence.
struct recovery_info {
    std::size_t records = 0;
    std::size_t segments = 0;
    std::uint64_t bytes = 0;
    std::int64_t duration_ms = 0;
    std::int64_t downtime_ms = 0;  // wall-clock time since the log's newest record
};

class broker_service final : private core::broker_events {
public:
    broker_service(boost::asio::any_io_executor executor, const server_config& config);

    core::broker& core() noexcept { return broker_; }
    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    const server_config& config() const noexcept { return config_; }
    server_counters& counters() noexcept { return counters_; }
    std::chrono::steady_clock::time_point started() const noexcept { return started_; }

    // The current time as the core takes it. The monotonic part continues the log's clock
    // across restarts (see open_log).
    core::instant now() const;

    // ---- connections ---------------------------------------------------------------------
    // Called once per new connection, before its first request, with `client.peer` and
    // `client.loopback` filled in. Sets `client.authenticated` (false when a password or users
    // are configured). Returns a refusal line (without the leading '-' and CRLF) to send
    // before closing the connection, e.g. protected mode; nullopt to serve it.
    std::optional<std::string> admit(client_state& client);
    // SIGHUP: re-reads what can change at run time (the users file). Logs what happened.
    void reload();
    access_control& access() noexcept { return access_; }

    // ---- admission: one policy for every front end ------------------------------------------
    // Whether a change whose log records take about `bytes` may go ahead now. While the disk
    // of the log is full, changes that add work are refused and the others (ACK, FAIL, LEASE,
    // ...) use the space reserved for finishing tasks (durable_log::admit); past --maxmemory,
    // changes that add work are refused. Each front end says it in its protocol: RESP
    // -MISCONF / -OOM, AMQP connection.blocked, basic.nack or 506 RESOURCE_ERROR
    // (admission.cpp; docs/storage-format.md "Disk full", docs/amqp.md "Flow control").
    enum class admission : std::uint8_t { admitted, disk_full, reserve_used, over_memory };
    admission admit_change(storage::change_kind kind, std::size_t bytes);
    // True while every change that adds work is refused, whatever its size.
    bool adds_refused();

    // --maxmemory: true when memory in use is past the limit (new tasks get -OOM). The
    // allocator is asked at most once a millisecond; between two readings a burst can pass
    // the limit by what it enqueues in that time.
    bool over_maxmemory();
    // Bytes the allocator has handed out and not taken back (INFO used_memory).
    static std::size_t memory_in_use();

    // ---- durability ---------------------------------------------------------------------
    // Recovers the state from the log in the data directory, then starts the log. On failure
    // (damage, an I/O error) returns a message for stderr naming the file and offset.
    // `on_fatal` runs on the core thread when the log fails later (fail-stop).
    std::optional<std::string> open_log(storage::file_io& io, std::function<void()> on_fatal);
    void close_log();
    // The file layer under the log (open_log's), for other files of the data directory; null
    // before open_log (then nothing is durable).
    storage::file_io* file_io() noexcept { return io_; }
    // Fail-stop for a failed write outside the log: logs `what` and stops the server as a
    // failed log write does (log_failed() from now on, on_fatal: exit status 1; sessions
    // send nothing more).
    void stop_on_fault(const std::string& what);
    // The fault-injecting file layer under the log (DEBUG LOG-FAULT), or null when the
    // debug command is off.
    storage::faulty_file_io* debug_io() noexcept { return debug_io_; }
    void set_debug_io(storage::faulty_file_io* io) noexcept { debug_io_ = io; }
    // DEBUG LOOP-FAULT: the next turn of the deadline loop ("deadline") or the housekeeping
    // loop ("housekeeping") throws, as a bug there would (server_main stops the server).
    void inject_loop_fault(std::string loop);
    // The event loop calls this when it has run everything that is ready, before it waits:
    // the records of every client served in this round go to the log together (one write,
    // one fsync), as in Redis's beforeSleep.
    void before_sleep();
    // A round ends early once this much is appended to the log (see server_main).
    bool round_full() const noexcept { return log_ && log_->pending_bytes() >= round_limit_bytes; }
    static constexpr std::size_t round_limit_bytes = 1 << 20;
    storage::durable_log* log() noexcept { return log_.get(); }
    const recovery_info& recovery() const noexcept { return recovery_; }
    // Replies produced now depend on every record appended so far.
    std::uint64_t log_position() const noexcept { return log_ ? log_->appended() : 0; }
    bool released(std::uint64_t position) const noexcept {
        return !log_ || log_->released() >= position;
    }
    bool log_failed() const noexcept { return log_failed_; }
    // A session waiting for `position` to be released parks on `timer` (expiry max); the
    // timer is cancelled once it is released or the log fails. forget_release_wait removes
    // the entry of a session that stops waiting early.
    void wait_release(std::uint64_t position, boost::asio::steady_timer& timer);
    void forget_release_wait(boost::asio::steady_timer& timer);

    // A fresh waiter id bound to `client` until forget_waiter (or until it is served).
    core::waiter_id add_waiter(waiting_client& client);
    // Ends the wait of `w` by running `finish` on its client (nothing when the client has gone
    // meanwhile): the end of a wait for work done off the core thread (AUTH's password check).
    void complete_deferred(core::waiter_id w, const std::function<void(waiting_client&)>& finish);
    // Cancels the waiter in the core too. Safe to call for an already served waiter.
    void forget_waiter(core::waiter_id id);

    // Call after any command: re-arms the deadline timer if the core's next deadline moved
    // earlier. Cheap when nothing changed.
    void deadlines_changed();

    // Runs until the executor stops: wakes the core at its deadlines.
    boost::asio::awaitable<void> run_deadlines();
    // Runs until stop(): once a second, the log's reserve and a retry of a full disk.
    boost::asio::awaitable<void> run_housekeeping();
    void stop();

private:
    void on_leased(core::waiter_id w, std::span<const core::leased_task> tasks) override;
    void on_popped(core::waiter_id w, std::string_view queue, std::string_view payload) override;
    void on_result(core::waiter_id w, const core::task_view& task) override;
    waiting_client* take_waiter(core::waiter_id w);
    void on_log_released();  // core thread
    void note_space();
    std::optional<storage::liveness_answer> ask_liveness(std::vector<std::string> ids);
    std::chrono::steady_clock::time_point to_steady(std::int64_t mono_us) const;

    boost::asio::any_io_executor executor_;

    const server_config& config_;
    access_control access_;
    std::chrono::steady_clock::time_point memory_sampled_{};
    bool over_maxmemory_ = false;
    core::broker broker_;
    boost::asio::steady_timer deadline_timer_;
    std::unordered_map<core::waiter_id, waiting_client*> waiters_;
    core::waiter_id next_waiter_ = 1;
    server_counters counters_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::string loop_fault_;  // DEBUG LOOP-FAULT
    bool stopped_ = false;

    std::unique_ptr<storage::durable_log> log_;
    // The log's reserve for finishing every live task (set_finishing_reserve): per task a
    // LEASE and an ACK record without their ids (frame headers, tags, instants, delivery,
    // deadline and lease length at their longest varints: 100 bytes), plus twice its id;
    // plus one estimate of commands.cpp's admitted() (256 bytes and the arguments, a
    // 255-byte queue name among them) beyond what the last finishing command writes.
    static constexpr std::uint64_t reserve_per_task = 100;
    static constexpr std::uint64_t reserve_slack = 1024;
    void set_finishing_reserve();
    boost::asio::steady_timer housekeeping_timer_;
    bool space_low_logged_ = false;
    std::int64_t mono_offset_us_ = 0;  // core mono time = steady_clock + offset
    recovery_info recovery_;
    std::deque<std::pair<std::uint64_t, boost::asio::steady_timer*>> release_waits_;
    std::function<void()> on_fatal_;
    bool log_failed_ = false;
    bool kick_due_ = false;
    bool sync_due_ = false;  // the next before_sleep syncs, waiters or not
    void trim_when_quiet();
    static constexpr int quiet_seconds_for_trim = 10;  // jemalloc's default decay is 10 s
    std::uint64_t appended_at_last_check_ = 0;
    int quiet_seconds_ = 0;
    storage::file_io* io_ = nullptr;  // open_log's
    storage::faulty_file_io* debug_io_ = nullptr;
};

core::broker_config make_broker_config(const server_config& config);

}  // namespace conveyor::server
