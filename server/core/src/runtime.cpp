// The operation frame (tick work, serving waiters, cleanup), lookups and views.
#include "broker_impl.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace conveyor::core {

std::int64_t add_ms(std::int64_t now_us, std::int64_t ms) noexcept {
    if (ms <= 0) return now_us;
    const std::int64_t us = std::min(ms, max_duration_ms) * 1000;  // <= 3.2e15: no overflow
    std::int64_t out = 0;
    if (__builtin_add_overflow(now_us, us, &out)) return std::numeric_limits<std::int64_t>::max();
    return out;
}

std::string out_of_range_message(std::string_view option) {
    return std::string(option) + " is out of range (max " + std::to_string(max_duration_ms) +
           " ms)";
}

broker::impl::impl(broker_config config, broker_events* events)
    : config_(config), events_(events) {}

broker::impl::~impl() {
    settle();
    index_.for_each([](detail::task* t) { detail::destroy_task(t); });
}

// ---- lookups and views ----------------------------------------------------------------------

detail::queue* broker::impl::find_queue(std::string_view name) const {
    auto it = queues_.find(name);
    return it == queues_.end() ? nullptr : it->second.get();
}

detail::queue& broker::impl::queue_for(std::string_view name) {
    auto it = queues_.find(name);
    if (it == queues_.end()) {
        it = queues_.emplace(std::string(name), std::make_unique<detail::queue>(std::string(name)))
                 .first;
    }
    return *it->second;
}

detail::task* broker::impl::token_task(std::string_view token) const {
    const std::size_t hash = token.rfind('#');
    if (hash == std::string_view::npos) return nullptr;
    const std::string_view digits = token.substr(hash + 1);
    std::uint32_t delivery = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), delivery);
    if (ec != std::errc{} || end != digits.data() + digits.size() || delivery == 0) {
        return nullptr;
    }
    detail::task* t = find_task(token.substr(0, hash));
    return (t != nullptr && t->delivery == delivery) ? t : nullptr;
}

detail::task* broker::impl::current_lease(std::string_view token) const {
    detail::task* t = token_task(token);
    return (t != nullptr && t->state == task_state::leased) ? t : nullptr;
}

const detail::task_extra* broker::impl::extra(const detail::task* t) const {
    if (!t->has(detail::flag_has_extra)) return nullptr;
    return &extras_.find(t)->second;
}

detail::task_extra& broker::impl::extra_for(detail::task* t) {
    t->set(detail::flag_has_extra, true);
    return extras_[t];
}

std::int64_t broker::impl::timeout_ms(const detail::task* t) const {
    const detail::task_extra* x = extra(t);
    return x != nullptr ? x->timeout_ms : 0;
}

std::int64_t broker::impl::lease_ms_for(const detail::task* t,
                                        std::optional<std::int64_t> asked) const {
    if (asked && *asked > 0) return std::min(*asked, max_duration_ms);
    const std::int64_t timeout = timeout_ms(t);
    if (timeout > 0) {
        std::int64_t total = 0;
        if (__builtin_add_overflow(timeout, config_.lease_grace_ms, &total)) return timeout;
        return std::min(total, max_duration_ms);
    }
    return config_.default_lease_ms;
}

task_view broker::impl::view(const detail::task* t) const {
    task_view v;
    v.id = t->id();
    v.queue = t->owner->name;
    v.name = t->name();
    v.state = t->state;
    v.attempt = t->attempt;
    v.priority = t->priority;
    if (const detail::task_extra* x = extra(t)) {
        if (x->has_result) v.result = x->result;
        if (x->has_error) v.error = x->error;
    }
    v.created_ms = t->created_ms;
    v.updated_ms = t->updated_ms;
    return v;
}

leased_task broker::impl::leased_view(const detail::task* t, std::int64_t lease_ms) const {
    leased_task l;
    l.id = t->id();
    l.lease.reserve(t->id().size() + 11);
    l.lease.append(t->id()).append(1, '#').append(std::to_string(t->delivery));
    l.queue = t->owner->name;
    l.name = t->name();
    l.payload = t->payload();
    l.attempt = t->attempt;
    l.lease_ms = lease_ms;
    l.priority = t->priority;
    if (const detail::task_extra* x = extra(t)) {
        l.timeout_ms = x->timeout_ms;
        l.properties = x->properties;
    }
    return l;
}

// Ids unique across restarts without stored state: the counter starts at the wall clock in
// microsecond units and only grows (note_id() also pushes it past every replayed id).
std::string broker::impl::generate_id(instant now) {
    constexpr std::int64_t max_wall = std::numeric_limits<std::int64_t>::max() / 1000;
    const std::uint64_t floor =
        (now.wall_ms > 0 && now.wall_ms < max_wall) ? std::uint64_t(now.wall_ms) * 1000 : 0;
    char buf[20];
    for (;;) {
        if (last_id_ == std::numeric_limits<std::uint64_t>::max()) id_counter_wrapped_ = true;
        last_id_ = std::max(last_id_ + 1, floor);
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, last_id_, 16);
        std::string id(buf, end);
        // Unique by construction: note_id() keeps the counter past every id of this form the
        // broker has seen. Only after the counter wrapped (a client gave an id such as
        // "ffffffffffffffff") can a fresh id be taken, and from then on it is looked up.
        if (!id_counter_wrapped_ || find_task(id) == nullptr) return id;
    }
}

// ---- the operation frame ----------------------------------------------------------------

void broker::impl::emit(const record& r) {
    apply(r);
    if (sink_) sink_(r);
}

void broker::impl::tick(instant now) {
    tick_work(now);
    finish(now);
}

void broker::impl::promote(std::int64_t now_us) {
    while (!delays_.empty() && delays_.begin()->at <= now_us) {
        detail::task* t = delays_.begin()->t;
        delays_.erase(delays_.begin());
        --t->owner->delayed_count;
        make_ready(t, false);
    }
}

void broker::impl::tick_work(instant now) {
    promote(now.mono_us);
    // Each loop emits one record that takes the first entry out of its index. The guard
    // erases an entry apply() left in place, so a broken invariant cannot spin forever.
    auto drain = [&](detail::timer_index& index, auto&& decide) {
        while (!index.empty() && index.begin()->at <= now.mono_us) {
            const detail::timer_key first = *index.begin();
            emit(decide(first.t));
            if (!index.empty() && index.begin()->t == first.t && index.begin()->at == first.at) {
                index.erase(index.begin());
            }
        }
    };
    drain(leases_, [&](detail::task* t) -> record {
        const bool last = std::int64_t{t->attempt} >= std::int64_t{t->max_retries} + 1;
        return rec_fail{now, std::string(t->id()), "lease expired", last, 0, true};
    });
    drain(ttls_, [&](detail::task* t) -> record {
        return rec_ttl_expired{now, std::string(t->id())};
    });
    drain(retention_, [&](detail::task* t) -> record {
        return rec_forget{now, std::string(t->id())};
    });
}

// Callbacks may call back into the broker (an on_leased handler that acks at once, a session
// that cancels its wait): a nested call's finish() does nothing, and this outermost one keeps
// serving until no queue has both ready tasks and waiters and no ended task has waiters left.
// Erased tasks are freed only after that, so no callback sees a freed task.
void broker::impl::finish(instant now) {
    if (finishing_) return;
    finishing_ = true;
    while (!woken_.empty() || !ended_.empty()) {
        serve_waiters(now);
        wake_results();
    }
    finishing_ = false;
    settle();
}

// Serves blocked LEASE/BLPOP clients of the queues that got ready tasks, strictly in arrival
// order: the earliest waiter on any such queue goes first, until tasks or waiters run out.
void broker::impl::serve_waiters(instant now) {
    while (events_ != nullptr) {
        detail::queue* best = nullptr;
        for (std::size_t i = 0; i < woken_.size(); ++i) {  // callbacks may append
            detail::queue* q = woken_[i];
            if (q->ready_count == 0 || q->waiters.empty()) continue;
            if (best == nullptr || q->waiters.begin()->first < best->waiters.begin()->first) {
                best = q;
            }
        }
        if (best == nullptr) break;
        const waiter_id id = best->waiters.begin()->second;
        if (waiters_.count(id) == 0) {  // cannot happen; never spin on it
            best->waiters.erase(best->waiters.begin());
            continue;
        }
        serve(id, now);
    }
    for (detail::queue* q : woken_) q->woken = false;
    woken_.clear();
}

void broker::impl::serve(waiter_id id, instant now) {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    const waiter w = it->second;
    remove_waiter(id);  // before the callback, as broker_events promises
    if (w.what == waiter::kind::lease) {
        std::vector<leased_task> tasks =
            take_leases(w.queues, w.count, w.lease_ms, w.session_bound, now);
        if (!tasks.empty()) events_->on_leased(id, tasks);
    } else if (w.what == waiter::kind::pop) {
        auto popped = take_pops(w.queues, w.end, 1, now);
        if (!popped.empty()) events_->on_popped(id, popped[0].first, popped[0].second);
    }
}

void broker::impl::wake_results() {
    for (std::size_t i = 0; i < ended_.size(); ++i) {  // callbacks may append
        detail::task* t = ended_[i];
        auto it = result_waiters_.find(t);
        if (it == result_waiters_.end()) continue;
        const std::vector<waiter_id> ids = std::move(it->second);
        result_waiters_.erase(it);
        for (waiter_id w : ids) {
            waiters_.erase(w);
            if (events_ != nullptr) events_->on_result(w, view(t));
        }
    }
    ended_.clear();
}

void broker::impl::settle() {
    // Scratch lists keep a small capacity; after a big purge or expiry burst they let go.
    auto clear_scratch = [](auto& list) {
        if (list.capacity() > 256) {
            std::remove_reference_t<decltype(list)>().swap(list);
        } else {
            list.clear();
        }
    };
    clear_scratch(ended_);
    for (detail::queue* q : woken_) q->woken = false;
    clear_scratch(woken_);
    for (detail::task* t : graveyard_) detail::destroy_task(t);
    clear_scratch(graveyard_);
    for (detail::queue* q : maybe_unused_) {
        q->maybe_unused = false;
        if (!q->unused()) continue;
        auto it = queues_.find(q->name);
        if (it != queues_.end() && it->second.get() == q) queues_.erase(it);
    }
    clear_scratch(maybe_unused_);
    // Hash tables keep their bucket arrays when emptied; give them back once idle.
    auto release_if_empty = [](auto& map) {
        if (map.empty() && map.bucket_count() > 64) {
            std::remove_reference_t<decltype(map)>().swap(map);
        }
    };
    release_if_empty(extras_);
    release_if_empty(waiters_);
    release_if_empty(result_waiters_);
}

std::vector<leased_task> broker::impl::take_leases(const std::vector<std::string>& queues,
                                                   std::size_t count,
                                                   std::optional<std::int64_t> lease_ms,
                                                   bool session_bound, instant now) {
    std::vector<leased_task> out;
    for (const std::string& name : queues) {
        detail::queue* q = find_queue(name);
        while (q != nullptr && out.size() < count) {
            detail::task* t = q->peek(list_end::front);
            if (t == nullptr) break;
            const std::int64_t ms = lease_ms_for(t, lease_ms);
            emit(rec_lease{now, std::string(t->id()), t->delivery + 1, add_ms(now.mono_us, ms), ms,
                           session_bound});
            out.push_back(leased_view(t, ms));
        }
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> broker::impl::take_pops(
    const std::vector<std::string>& queues, list_end end, std::size_t count, instant now) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const std::string& name : queues) {
        detail::queue* q = find_queue(name);
        while (q != nullptr && out.size() < count) {
            detail::task* t = q->peek(end);
            if (t == nullptr) break;
            out.emplace_back(q->name, std::string(t->payload()));
            emit(rec_pop{now, std::string(t->id())});
        }
    }
    return out;
}

void broker::impl::add_waiter(waiter_id id, waiter w) {
    remove_waiter(id);
    w.arrival = ++arrivals_;
    if (w.what == waiter::kind::result) {
        result_waiters_[w.target].push_back(id);
    } else {
        for (const std::string& name : w.queues) queue_for(name).waiters.emplace(w.arrival, id);
    }
    waiters_.emplace(id, std::move(w));
}

void broker::impl::remove_waiter(waiter_id id) {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    const waiter& w = it->second;
    if (w.what == waiter::kind::result) {
        auto rw = result_waiters_.find(w.target);
        if (rw != result_waiters_.end()) {
            std::erase(rw->second, id);
            if (rw->second.empty()) result_waiters_.erase(rw);
        }
    } else {
        for (const std::string& name : w.queues) {
            detail::queue* q = find_queue(name);
            if (q == nullptr) continue;
            q->waiters.erase(w.arrival);
            if (q->unused() && !q->maybe_unused) {
                q->maybe_unused = true;
                maybe_unused_.push_back(q);
            }
        }
    }
    waiters_.erase(it);
}

}  // namespace conveyor::core
