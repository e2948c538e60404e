// One connection role of the worker runtime (leasing, or reporting) that reconnects when it
// breaks, with the backoff and refusal rules of worker.hpp. Internal to client/src.
//
// Failures (a connect that failed, a connection lost, an error reply) count up until the
// broker answers a command again (answered()); each new attempt first waits
// reconnect_delay(failures), so no loop runs faster than the backoff, however quickly
// connects succeed and connections die. A refusal that waiting will not heal (refusal.hpp)
// drops the connection and also counts as a refusal; after refusal_retries of them in a row the
// link is refused for good: on_refused gets the error (errc::refused, saying why and what to
// do) once, and get() returns nullptr from then on.
#pragma once

#include <conveyor/client/connection.hpp>
#include <conveyor/client/worker.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>

namespace conveyor::client::detail {

using log_fn = std::function<void(worker_log_level, const std::string&)>;

// Waits `d` on the current executor.
awaitable<void> sleep_for(std::chrono::milliseconds d);

class broker_link {
public:
    using time_point = std::chrono::steady_clock::time_point;

    broker_link(boost::asio::any_io_executor ex, const worker_options& o, std::string role,
                const log_fn& log, std::uint64_t& reconnects);

    // Called once when the link is refused for good (from the coroutine that saw it).
    void on_refused(std::function<void(std::exception_ptr)> f) { on_refused_ = std::move(f); }

    std::shared_ptr<connection> current() const { return conn_; }

    // At start: retries until `deadline`, then throws client::error (timed_out) with the last
    // cause; a TLS failure throws at once, a refusal for good throws errc::refused.
    awaitable<void> connect_first(time_point deadline);

    // The open connection, reconnecting with the backoff when there is none; nullptr once
    // give_up() says so (checked at least every 100 ms while waiting) or the link is refused
    // for good. Holders get a shared_ptr, so a connection another coroutine declared broken
    // stays valid (and closed). One caller connects; the others poll until it is done.
    awaitable<std::shared_ptr<connection>> get(std::function<bool()> give_up);

    // The broker answered a command: the failures so far are forgiven.
    void answered() { failures_ = refusals_ = 0; }

    // `c` failed with `why` (I/O): if it is still the current connection, it is dropped (the
    // next get() reconnects). Counts a failure.
    void broken(const std::shared_ptr<connection>& c, const std::exception& why);

    // `c`'s `command` got the error reply `e`. Counts a failure; a refusal for good, or a reply
    // that closed the connection, also drops `c`.
    void refused(const std::shared_ptr<connection>& c, const server_error& e,
                 const std::string& command);

    // Waits the backoff of the failures so far (nothing after none); ends early on give_up().
    awaitable<void> pause(const std::function<bool()>& give_up);

    bool refused_for_good() const noexcept { return gone_ != nullptr; }

    void close();

private:
    void log(worker_log_level l, const std::string& s) const {
        if (log_) log_(l, s);
    }
    // Counts the permanent refusal `e`; true once refusal_retries are used up (then gone_ is
    // the error to report).
    bool count_refusal(const server_error& e);
    std::chrono::milliseconds backoff() const;

    boost::asio::any_io_executor ex_;
    const worker_options& o_;
    std::string role_;
    const log_fn& log_;
    std::uint64_t& reconnects_;
    std::function<void(std::exception_ptr)> on_refused_;
    std::shared_ptr<connection> conn_;
    bool connecting_ = false;
    unsigned failures_ = 0;  // since the broker last answered
    unsigned refusals_ = 0;  // permanent refusals since the broker last answered
    std::exception_ptr gone_;
};

}  // namespace conveyor::client::detail
