// Management, introspection, time and replay.
#include "broker_impl.hpp"

namespace conveyor::core {

bool broker::cancel(std::string_view id, instant now) {
    impl_->tick(now);
    detail::task* t = impl_->find_task(id);
    if (t == nullptr || t->ended()) return false;
    impl_->emit(rec_cancel{now, std::string(id)});
    impl_->finish(now);
    return true;
}

std::optional<task_view> broker::task(std::string_view id, instant now) {
    impl_->tick(now);
    const detail::task* t = impl_->find_task(id);
    if (t == nullptr) return std::nullopt;
    return impl_->view(t);
}

std::optional<task_view> broker::result(std::string_view id, instant now,
                                        std::optional<waiter_id> block_as) {
    impl_->tick(now);
    detail::task* t = impl_->find_task(id);
    if (t == nullptr) return std::nullopt;
    if (t->ended()) return impl_->view(t);
    if (block_as) {
        waiter w;
        w.what = waiter::kind::result;
        w.target = t;
        impl_->add_waiter(*block_as, std::move(w));
    }
    return std::nullopt;
}

std::size_t broker::ready_count(std::string_view queue, instant now) {
    impl_->tick(now);
    const detail::queue* q = impl_->find_queue(queue);
    return q != nullptr ? q->ready_count : 0;
}

std::vector<std::string> broker::queue_names(instant now) {
    impl_->tick(now);
    std::vector<std::string> names;
    for (const auto& [name, q] : impl_->queues_) {
        if (q->held() > 0) names.push_back(name);
    }
    return names;
}

// count == 0 lists every dead task of the queue.
std::vector<std::string> broker::dead_ids(std::string_view queue, std::size_t count, instant now) {
    impl_->tick(now);
    std::vector<std::string> ids;
    const detail::queue* q = impl_->find_queue(queue);
    if (q == nullptr) return ids;
    for (const detail::timer_key& k : q->dead) {
        if (count != 0 && ids.size() >= count) break;
        ids.emplace_back(k.t->id());
    }
    return ids;
}

bool broker::requeue(std::string_view id, instant now) {
    impl_->tick(now);
    const detail::task* t = impl_->find_task(id);
    if (t == nullptr || t->state != task_state::dead) return false;
    impl_->emit(rec_requeue{now, std::string(id)});
    impl_->finish(now);
    return true;
}

std::size_t broker::purge(std::string_view queue, instant now) {
    impl_->tick(now);
    const detail::queue* q = impl_->find_queue(queue);
    const std::size_t n = q != nullptr ? q->ready_count : 0;
    if (n == 0) return 0;
    impl_->emit(rec_purge{now, std::string(queue)});
    impl_->finish(now);
    return n;
}

bool broker::delete_queue(std::string_view queue, instant now) {
    impl_->tick(now);
    const detail::queue* q = impl_->find_queue(queue);
    if (q == nullptr || q->ready_count + q->delayed_count + q->dead.size() == 0) return false;
    impl_->emit(rec_delete_queue{now, std::string(queue)});
    impl_->finish(now);
    return true;
}

void broker::cancel_wait(waiter_id w) {
    impl_->remove_waiter(w);
    if (!impl_->finishing_) impl_->settle();  // from a callback: the running finish() settles
}

void broker::tick(instant now) {
    impl_->tick(now);
}

std::optional<std::int64_t> broker::next_deadline() const {
    std::optional<std::int64_t> next;
    for (const detail::timer_index* index :
         {&impl_->delays_, &impl_->leases_, &impl_->ttls_, &impl_->retention_}) {
        if (index->empty()) continue;
        const std::int64_t at = index->begin()->at;
        if (!next || at < *next) next = at;
    }
    return next;
}

stats_snapshot broker::stats() const {
    stats_snapshot s = impl_->counters_;
    s.tasks_live = impl_->index_.size();
    s.queues = 0;
    for (const auto& entry : impl_->queues_) {
        if (entry.second->held() > 0) ++s.queues;
    }
    s.waiters = impl_->waiters_.size();
    s.payload_bytes = impl_->payload_bytes_;
    return s;
}

std::size_t broker::live_tasks() const noexcept {
    return impl_->index_.size();
}

std::size_t broker::live_id_bytes() const noexcept {
    return impl_->id_bytes_;
}

std::vector<queue_snapshot> broker::queues_snapshot() const {
    std::vector<queue_snapshot> out;
    for (const auto& [name, q] : impl_->queues_) {
        if (q->held() == 0) continue;
        out.push_back({name, q->ready_count, q->delayed_count, q->leased_count, q->dead.size()});
    }
    return out;
}

// Promotion is derived from time, so it is redone here exactly as the live broker did it
// before deciding the record: every delayed task due by the record's time is ready first.
void broker::replay(const record& r) {
    impl_->promote(record_time(r).mono_us);
    if (record_times_in_range(r)) {
        impl_->apply(r);
    } else {
        record clamped = r;  // only a log written before the range existed holds one
        clamp_record_times(clamped);
        impl_->apply(clamped);
    }
    impl_->settle();
}

bool broker::contains(std::string_view id) const {
    return impl_->find_task(id) != nullptr;
}

bool broker::holds_queue(std::string_view queue) const {
    const detail::queue* q = impl_->find_queue(queue);
    return q != nullptr && q->held() > 0;
}

}  // namespace conveyor::core
