// What the broker does once its log has been replayed, before it serves anyone.
#include "broker_impl.hpp"

#include <algorithm>

namespace conveyor::core {

// A session-bound lease (an AMQP delivery) can only be settled by the channel that received
// it, and no channel survives a restart: left alone it would hold its task until the lease
// ran out (--amqp-consumer-timeout, 30 minutes by default). Released as a closed connection
// releases its unacked deliveries: at once, the attempt given back, redelivered next time.
std::size_t broker::release_session_leases(instant now) {
    impl_->tick(now);
    std::vector<std::string> ids;
    for (const detail::timer_key& k : impl_->leases_) {
        if (k.t->has(detail::flag_session_lease)) ids.emplace_back(k.t->id());
    }
    for (std::string& id : ids) impl_->emit(rec_release{now, std::move(id), 0});
    impl_->finish(now);
    return ids.size();
}

std::vector<std::string> broker::queues_holding(
    const std::function<bool(std::string_view properties)>& pred) const {
    std::vector<std::string> out;
    impl_->index_.for_each([&](const detail::task* t) {
        if (t->state == task_state::succeeded || t->state == task_state::cancelled) return;
        const detail::task_extra* x = impl_->extra(t);
        if (!pred(x != nullptr ? std::string_view(x->properties) : std::string_view())) return;
        out.push_back(t->owner->name);
    });
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace conveyor::core
