// Owns the broker core on the server's single core thread: reads the clocks, drives the
// core's deadlines with one timer, and routes the core's wake-ups to the waiting sessions.
// Everything here runs on one executor (see server/THREADING.md); nothing is locked.
#pragma once

#include "net/config.hpp"

#include <conveyor/core/broker.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace conveyor::server {

// A session blocked in LEASE/BLPOP/RESULT ... implements this to receive what it waits for.
class waiting_client {
public:
    virtual ~waiting_client() = default;
    virtual void on_leased(std::span<const core::leased_task> tasks) = 0;
    virtual void on_popped(std::string_view queue, std::string_view payload) = 0;
    virtual void on_result(const core::task_view& task) = 0;
};

struct server_counters {
    std::uint64_t connections_received = 0;
    std::uint64_t commands_processed = 0;
    std::uint64_t rejected_connections = 0;
    std::size_t connected_clients = 0;
    std::size_t blocked_clients = 0;
};

class broker_service final : private core::broker_events {
public:
    broker_service(boost::asio::any_io_executor executor, const server_config& config);

    core::broker& core() noexcept { return broker_; }
    const server_config& config() const noexcept { return config_; }
    server_counters& counters() noexcept { return counters_; }
    std::chrono::steady_clock::time_point started() const noexcept { return started_; }

    // The current time as the core takes it.
    core::instant now() const;

    // A fresh waiter id bound to `client` until forget_waiter (or until it is served).
    core::waiter_id add_waiter(waiting_client& client);
    // Cancels the waiter in the core too. Safe to call for an already served waiter.
    void forget_waiter(core::waiter_id id);

    // Call after any command: re-arms the deadline timer if the core's next deadline moved
    // earlier. Cheap when nothing changed.
    void deadlines_changed();

    // Runs until the executor stops: wakes the core at its deadlines.
    boost::asio::awaitable<void> run_deadlines();
    void stop();

private:
    void on_leased(core::waiter_id w, std::span<const core::leased_task> tasks) override;
    void on_popped(core::waiter_id w, std::string_view queue, std::string_view payload) override;
    void on_result(core::waiter_id w, const core::task_view& task) override;
    waiting_client* take_waiter(core::waiter_id w);

    const server_config& config_;
    core::broker broker_;
    boost::asio::steady_timer deadline_timer_;
    std::unordered_map<core::waiter_id, waiting_client*> waiters_;
    core::waiter_id next_waiter_ = 1;
    server_counters counters_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    bool stopped_ = false;
};

core::broker_config make_broker_config(const server_config& config);

}  // namespace conveyor::server
