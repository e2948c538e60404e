#include "net/broker_service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <random>

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
    : config_(config),
      broker_(make_broker_config(config), this),
      deadline_timer_(executor, steady_clock::time_point::max()) {}

core::instant broker_service::now() const {
    using namespace std::chrono;
    return core::instant{
        duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count(),
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()};
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
    auto at = steady_clock::time_point(microseconds(*next));
    // Moving the expiry cancels the pending wait; run_deadlines() then re-reads the deadline.
    if (at < deadline_timer_.expiry()) deadline_timer_.expires_at(at);
}

asio::awaitable<void> broker_service::run_deadlines() {
    while (!stopped_) {
        auto next = broker_.next_deadline();
        deadline_timer_.expires_at(next ? steady_clock::time_point(microseconds(*next))
                                        : steady_clock::time_point::max());
        auto [ec] = co_await deadline_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopped_) break;
        if (ec == asio::error::operation_aborted) continue;  // re-armed earlier
        broker_.tick(now());
    }
}

void broker_service::stop() {
    stopped_ = true;
    deadline_timer_.cancel();
}

}  // namespace conveyor::server
