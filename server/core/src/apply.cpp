// apply(record): the only code that changes tasks. Contract: given the same state and the
// same record it does the same thing, live or in a replay, so it reads nothing but the record,
// the state and the config. A record that does not fit the state (a replayed log from a
// different history) is ignored rather than trusted.
#include "broker_impl.hpp"

#include <algorithm>
#include <charconv>

namespace conveyor::core {

void broker::impl::apply(const record& r) {
    std::visit([this](const auto& rec) { apply_one(rec); }, r);
}

void broker::impl::apply_one(const rec_enqueue& r) {
    detail::task* t = detail::make_task(r.id, r.name, r.payload);
    // One probe both checks the id is free and places the task (an existing id: no-op).
    if (!index_.insert_unique(t)) {
        detail::destroy_task(t);
        return;
    }
    detail::queue& q = queue_for(r.queue);
    t->owner = &q;
    ++q.refs;
    t->created_ms = t->updated_ms = r.at.wall_ms;
    t->priority = static_cast<std::uint8_t>(r.priority);
    t->max_retries =
        static_cast<std::uint16_t>(std::clamp(r.max_retries, 0, detail::max_retries_limit));
    ++counters_.tasks_enqueued;
    payload_bytes_ += r.payload.size() + r.properties.size();
    id_bytes_ += r.id.size();
    note_id(r.id);

    const bool own_backoff =
        r.backoff_base_ms != config_.backoff_base_ms || r.backoff_max_ms != config_.backoff_max_ms;
    if (own_backoff || r.timeout_ms > 0 || r.ttl_deadline_us > 0 || !r.properties.empty()) {
        detail::task_extra& x = extra_for(t);
        x.own_backoff = own_backoff;
        x.backoff_base_ms = r.backoff_base_ms;
        x.backoff_max_ms = r.backoff_max_ms;
        x.timeout_ms = r.timeout_ms;
        x.ttl_deadline_us = r.ttl_deadline_us;
        x.properties = r.properties;
        if (r.ttl_deadline_us > 0) ttls_.insert({r.ttl_deadline_us, t});
    }
    if (r.due_us > r.at.mono_us) {
        make_delayed(t, r.due_us);
    } else {
        make_ready(t, r.at_front);
    }
}

void broker::impl::apply_one(const rec_lease& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::queued) return;
    take_out(t);
    drop_ttl(t);  // TTL bounds the wait for a first lease only
    t->state = task_state::leased;
    t->delivery = r.delivery;
    if (t->attempt < 0xffff) ++t->attempt;
    t->deadline_us = r.deadline_us;
    t->updated_ms = r.at.wall_ms;
    t->set(detail::flag_cancelled_in_lease, false);
    t->set(detail::flag_session_lease, r.session_bound);
    leases_.insert({t->deadline_us, t});
    ++t->owner->leased_count;
    ++counters_.tasks_leased;
}

void broker::impl::apply_one(const rec_ack& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::leased) return;
    take_out(t);
    detail::task_extra& x = extra_for(t);
    x.result = r.result;
    x.has_result = true;
    t->updated_ms = r.at.wall_ms;
    make_ended(t, task_state::succeeded, r.at.mono_us);
    ++counters_.tasks_succeeded;
}

void broker::impl::apply_one(const rec_fail& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::leased) return;
    take_out(t);
    t->updated_ms = r.at.wall_ms;
    ++counters_.tasks_failed;
    if (r.expired) ++counters_.tasks_expired;
    if (r.dead) {
        make_dead(t, r.error);
        return;
    }
    set_error(t, r.error);
    if (r.retry_due_us > r.at.mono_us) {
        make_delayed(t, r.retry_due_us);
    } else {
        // An expired lease goes back to the front of its priority: it was handed out before
        // the tasks now waiting, so FIFO order holds and redelivery is prompt (at-least-once
        // within lease + one tick). An explicit FAIL with no delay goes to the back.
        make_ready(t, r.expired);
    }
}

void broker::impl::apply_one(const rec_release& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::leased) return;
    take_out(t);
    t->updated_ms = r.at.wall_ms;
    if (t->attempt > 0) --t->attempt;  // a release is not a failure: the attempt is given back
    if (r.due_us > r.at.mono_us) {
        make_delayed(t, r.due_us);
    } else {
        make_ready(t, false);
    }
}

void broker::impl::apply_one(const rec_extend& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::leased) return;
    leases_.erase({t->deadline_us, t});
    t->deadline_us = r.deadline_us;
    t->updated_ms = r.at.wall_ms;
    leases_.insert({t->deadline_us, t});
}

void broker::impl::apply_one(const rec_cancel& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->ended()) return;
    const bool was_leased = t->state == task_state::leased;
    take_out(t);
    drop_ttl(t);
    t->set(detail::flag_cancelled_in_lease, was_leased);
    t->updated_ms = r.at.wall_ms;
    // A cancelled task did not fail: an error from an earlier attempt (or from before a
    // REQUEUE) would read as the reason it ended.
    if (auto it = extras_.find(t); it != extras_.end()) {
        it->second.has_error = false;
        std::string().swap(it->second.error);
    }
    make_ended(t, task_state::cancelled, r.at.mono_us);
    ++counters_.tasks_cancelled;
}

void broker::impl::apply_one(const rec_ttl_expired& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || (t->state != task_state::queued && t->state != task_state::delayed)) {
        return;
    }
    take_out(t);
    drop_ttl(t);
    t->updated_ms = r.at.wall_ms;
    make_dead(t, "ttl expired");
}

void broker::impl::apply_one(const rec_requeue& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::dead) return;
    take_out(t);
    t->attempt = 0;
    t->updated_ms = r.at.wall_ms;
    make_ready(t, false);
}

void broker::impl::apply_one(const rec_pop& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr || t->state != task_state::queued) return;
    take_out(t);
    drop_ttl(t);
    ++t->attempt;
    ++t->delivery;
    t->updated_ms = r.at.wall_ms;
    t->state = task_state::succeeded;  // what RESULT waiters see; the task is gone after this
    ++counters_.tasks_leased;
    ++counters_.tasks_succeeded;
    ended_.push_back(t);
    erase_task(t);
}

void broker::impl::apply_one(const rec_forget& r) {
    detail::task* t = find_task(r.id);
    if (t == nullptr) return;
    if (t->state != task_state::succeeded && t->state != task_state::cancelled) return;
    retention_.erase({t->deadline_us, t});
    erase_task(t);
}

void broker::impl::apply_one(const rec_purge& r) {
    detail::queue* q = find_queue(r.queue);
    if (q == nullptr) return;
    std::vector<detail::task*> purged;
    purged.reserve(q->ready_count);
    q->drain_ready([&](detail::task* t) { purged.push_back(t); });
    for (detail::task* t : purged) {
        drop_ttl(t);
        erase_task(t);
    }
}

void broker::impl::apply_one(const rec_delete_queue& r) {
    detail::queue* q = find_queue(r.queue);
    if (q == nullptr) return;
    std::vector<detail::task*> doomed;
    q->drain_ready([&](detail::task* t) { doomed.push_back(t); });
    for (const detail::timer_key& k : delays_) {
        if (k.t->owner == q) doomed.push_back(k.t);
    }
    for (const detail::timer_key& k : q->dead) doomed.push_back(k.t);
    for (detail::task* t : doomed) {
        if (t->state != task_state::queued) take_out(t);
        drop_ttl(t);
        erase_task(t);
    }
}

// ---- state transitions --------------------------------------------------------------------

void broker::impl::make_ready(detail::task* t, bool at_front) {
    t->state = task_state::queued;
    detail::queue& q = *t->owner;
    if (at_front) {
        q.push_front(t);
    } else {
        q.push_back(t);
    }
    if (!q.woken) {
        q.woken = true;
        woken_.push_back(&q);
    }
}

void broker::impl::make_delayed(detail::task* t, std::int64_t due_us) {
    t->state = task_state::delayed;
    t->deadline_us = due_us;
    delays_.insert({due_us, t});
    ++t->owner->delayed_count;
}

void broker::impl::make_dead(detail::task* t, std::string_view error) {
    set_error(t, error);
    t->state = task_state::dead;
    t->deadline_us = static_cast<std::int64_t>(++dead_seq_);
    t->owner->dead.insert({t->deadline_us, t});
    ++counters_.tasks_dead;
    ended_.push_back(t);
}

void broker::impl::make_ended(detail::task* t, task_state state, std::int64_t now_us) {
    t->state = state;
    t->deadline_us = add_ms(now_us, config_.result_ttl_ms);
    retention_.insert({t->deadline_us, t});
    ended_.push_back(t);
}

void broker::impl::take_out(detail::task* t) {
    detail::queue& q = *t->owner;
    switch (t->state) {
        case task_state::queued:
            q.remove_ready(t);
            break;
        case task_state::delayed:
            delays_.erase({t->deadline_us, t});
            --q.delayed_count;
            break;
        case task_state::leased:
            leases_.erase({t->deadline_us, t});
            --q.leased_count;
            break;
        case task_state::dead:
            q.dead.erase({t->deadline_us, t});
            break;
        case task_state::succeeded:
        case task_state::cancelled:
            retention_.erase({t->deadline_us, t});
            break;
    }
}

void broker::impl::drop_ttl(detail::task* t) {
    if (!t->has(detail::flag_has_extra)) return;
    detail::task_extra& x = extras_.find(t)->second;
    if (x.ttl_deadline_us == 0) return;
    ttls_.erase({x.ttl_deadline_us, t});
    x.ttl_deadline_us = 0;
}

void broker::impl::set_error(detail::task* t, std::string_view error) {
    detail::task_extra& x = extra_for(t);
    x.error.assign(error);
    x.has_error = true;
}

// Removes the task from the index and the books; frees it once the operation is over (RESULT
// waiters of a popped task still read it). Contract: it is in no ready/deadline structure.
void broker::impl::erase_task(detail::task* t) {
    index_.erase(t);
    if (t->has(detail::flag_has_extra)) {
        auto x = extras_.find(t);
        payload_bytes_ -= x->second.properties.size();
        extras_.erase(x);
        t->set(detail::flag_has_extra, false);  // RESULT waiters may still view it this turn
    }
    // Purged or deleted before it ended: its RESULT waiters are answered now with the task as
    // it was (not finished, so nil), the same path a popped task takes, rather than left to
    // wait for an end that can no longer come.
    if (!t->ended() && result_waiters_.count(t) != 0) ended_.push_back(t);
    payload_bytes_ -= t->payload_len;
    id_bytes_ -= t->id_len;
    detail::queue& q = *t->owner;
    if (--q.refs == 0 && !q.maybe_unused) {
        q.maybe_unused = true;
        maybe_unused_.push_back(&q);
    }
    graveyard_.push_back(t);
}

// Generated ids are hex numbers; any id that parses as one pushes the generator past it, so
// a broker rebuilt from its log never hands out an id it already used.
void broker::impl::note_id(std::string_view id) {
    if (id.empty() || id.size() > 16) return;  // 16 hex digits: every 64-bit value
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value, 16);
    if (ec != std::errc{} || end != id.data() + id.size()) return;
    for (char c : id) {
        if (c >= 'A' && c <= 'F') return;  // generated ids are lower case
    }
    if (value > last_id_) last_id_ = value;
}

}  // namespace conveyor::core
