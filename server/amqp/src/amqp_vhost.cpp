// The AMQP virtual host: queues as AMQP sees them, their consumers, generated names, x-expires.
#include <conveyor/amqp/amqp_session.hpp>

#include <conveyor/runtime/log_text.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace asio = boost::asio;

namespace conveyor::server {

amqp_vhost::amqp_vhost(broker_service& service)
    : service_(service), expiry_timer_(service.executor()) {
    std::random_device rd;
    name_seed_ = (std::uint64_t{rd()} << 32) ^ rd();
}

amqp_queue* amqp_vhost::find_queue(std::string_view name) {
    if (auto* q = topology_.find_queue(name)) return q;
    if (!name.empty() && service_.core().holds_queue(name)) {
        return &topology_.adopt_queue(name, service_.now().mono_us);
    }
    return nullptr;
}

std::size_t amqp_vhost::delete_queue(std::string_view name_view) {
    const std::string name(name_view);
    std::vector<amqp_consumer*> cancelled;
    auto [b, e] = consumers_.equal_range(name);
    for (auto it = b; it != e; ++it) cancelled.push_back(it->second);
    for (auto* c : cancelled) c->session->consumer_cancelled_by_broker(*c);
    const auto now = service_.now();
    const auto ready = service_.core().ready_count(name, now);
    service_.core().delete_queue(name, now);
    topology_.remove_queue(name);
    service_.deadlines_changed();
    return ready;
}

void amqp_vhost::add_consumer(amqp_consumer& c) {
    c.order = ++consumer_order_;
    consumers_.emplace(c.queue, &c);
}

amqp_consumer* amqp_vhost::active_consumer(std::string_view queue) const {
    amqp_consumer* first = nullptr;
    auto [b, e] = consumers_.equal_range(std::string(queue));
    for (auto it = b; it != e; ++it) {
        if (first == nullptr || it->second->order < first->order) first = it->second;
    }
    return first;
}

void amqp_vhost::remove_consumer(amqp_consumer& c) {
    auto [b, e] = consumers_.equal_range(c.queue);
    for (auto it = b; it != e; ++it) {
        if (it->second == &c) {
            consumers_.erase(it);
            return;
        }
    }
}

std::size_t amqp_vhost::consumer_count(std::string_view queue) const {
    return consumers_.count(std::string(queue));
}

bool amqp_vhost::has_exclusive_consumer(std::string_view queue) const {
    auto [b, e] = consumers_.equal_range(std::string(queue));
    for (auto it = b; it != e; ++it)
        if (it->second->exclusive) return true;
    return false;
}

std::string amqp_vhost::generate_name(std::string_view prefix) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out(prefix);
    std::uint64_t x = name_seed_ ^ (++name_counter_ * 0x9E3779B97F4A7C15ull);
    for (int i = 0; i < 22; ++i) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 29;
        out.push_back(alphabet[x & 63]);
    }
    return out;
}

asio::awaitable<void> amqp_vhost::run_expiry() {
    while (!stopped_) {
        const auto now = service_.now().mono_us;
        for (const auto& name : topology_.expired_queues(now)) {
            spdlog::info("amqp: queue '{}' expired (x-expires): deleting it", log_text(name));
            delete_queue(name);
        }
        save_if_changed();
        auto next = topology_.next_expiry();
        auto wait = std::chrono::microseconds(
            next ? std::clamp<std::int64_t>(*next - now, 1000, 1000000) : 1000000);
        expiry_timer_.expires_after(wait);
        co_await expiry_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

void amqp_vhost::stop() {
    stopped_ = true;
    expiry_timer_.cancel();
}

}  // namespace conveyor::server
