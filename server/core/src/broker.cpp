// Producer and consumer operations: each decides, emits records, then finishes the operation
// (see broker_impl.hpp for the frame).
#include "broker_impl.hpp"
#include "conveyor/core/backoff.hpp"

#include <algorithm>

namespace conveyor::core {

broker::broker(broker_config config, broker_events* events)
    : impl_(std::make_unique<impl>(config, events)) {}

broker::~broker() = default;

void broker::set_events(broker_events* events) noexcept {
    impl_->events_ = events;
}
void broker::set_record_sink(record_sink sink) {
    impl_->sink_ = std::move(sink);
}
const broker_config& broker::config() const noexcept {
    return impl_->config_;
}

namespace {

// The range check of every duration option (docs/commands.md, "Durations and timestamps").
// AT is a wall time: at most max_duration_ms ahead of `now`; any time before it is "now".
std::string check_time_ranges(const enqueue_options& o, instant now) {
    auto beyond = [](const std::optional<std::int64_t>& ms) { return ms && *ms > max_duration_ms; };
    if (beyond(o.delay_ms)) return out_of_range_message("DELAY");
    if (o.at_unix_ms) {
        std::int64_t ahead = 0;
        if (__builtin_sub_overflow(*o.at_unix_ms, now.wall_ms, &ahead) || ahead > max_duration_ms)
            return "AT is out of range (max 100 years from now)";
    }
    if (beyond(o.backoff_base_ms) || beyond(o.backoff_max_ms)) {
        return out_of_range_message("BACKOFF");
    }
    if (beyond(o.timeout_ms)) return out_of_range_message("TIMEOUT");
    if (beyond(o.ttl_ms)) return out_of_range_message("TTL");
    return {};
}

// Returns an error message, or an empty string when the options are acceptable.
std::string check_options(const enqueue_options& o, instant now) {
    if (auto range = check_time_ranges(o, now); !range.empty()) return range;
    if (o.id && o.id->empty()) return "ID must not be empty";
    if (o.id && o.id->size() > detail::max_id_bytes) return "ID is longer than 65535 bytes";
    if (o.name.size() > detail::max_name_bytes) return "NAME is longer than 65535 bytes";
    if (o.priority < 0 || o.priority > max_priority) return "PRIORITY must be between 0 and 9";
    if (o.delay_ms && *o.delay_ms < 0) return "DELAY must not be negative";
    if (o.retries && (*o.retries < 0 || *o.retries > detail::max_retries_limit)) {
        return "RETRIES must be between 0 and 65534";
    }
    if ((o.backoff_base_ms && *o.backoff_base_ms <= 0) ||
        (o.backoff_max_ms && o.backoff_base_ms && *o.backoff_max_ms < *o.backoff_base_ms) ||
        (o.backoff_max_ms && *o.backoff_max_ms <= 0)) {
        return "BACKOFF needs 0 < base-ms <= max-ms";
    }
    if (o.timeout_ms && *o.timeout_ms <= 0) return "TIMEOUT must be positive";
    if (o.ttl_ms && *o.ttl_ms <= 0) return "TTL must be positive";
    return {};
}

// Mono time at which a task becomes ready; 0 = now. AT (which wins over DELAY when both are
// given) is wall time, converted once here: a later wall-clock jump does not move the due time.
std::int64_t due_time(const enqueue_options& o, instant now) {
    std::int64_t due = 0;
    if (o.at_unix_ms) {
        const std::int64_t ahead_ms = *o.at_unix_ms > now.wall_ms ? *o.at_unix_ms - now.wall_ms : 0;
        due = add_ms(now.mono_us, ahead_ms);
    } else if (o.delay_ms) {
        due = add_ms(now.mono_us, *o.delay_ms);
    }
    return due > now.mono_us ? due : 0;
}

// The record of a new task: the options given, the broker's defaults for the rest.
rec_enqueue make_enqueue(const broker_config& c, std::string_view queue, std::string_view payload,
                         const enqueue_options& o, std::string id, instant now) {
    rec_enqueue r;
    r.at = now;
    r.id = std::move(id);
    r.queue = queue;
    r.name = o.name;
    r.payload = payload;
    r.priority = o.priority;
    r.due_us = due_time(o, now);
    r.max_retries = o.retries.value_or(c.default_retries);
    r.backoff_base_ms = o.backoff_base_ms.value_or(c.backoff_base_ms);
    r.backoff_max_ms = o.backoff_max_ms.value_or(c.backoff_max_ms);
    r.timeout_ms = o.timeout_ms.value_or(0);
    r.ttl_deadline_us = o.ttl_ms ? add_ms(now.mono_us, *o.ttl_ms) : 0;
    r.properties = o.properties;
    return r;
}

}  // namespace

enqueue_result broker::enqueue(std::string_view queue, std::string_view payload,
                               const enqueue_options& opts, instant now) {
    impl_->tick(now);
    enqueue_result out;
    out.error = check_options(opts, now);
    if (!out.error.empty() || payload.size() > UINT32_MAX) {
        if (out.error.empty()) out.error = "payload is larger than 4 GiB";
        out.status = op_status::invalid;
        return out;
    }
    if (opts.id && impl_->find_task(*opts.id) != nullptr) {
        out.id = *opts.id;  // idempotent producer retry: the first enqueue stands
        return out;
    }
    rec_enqueue r = make_enqueue(impl_->config_, queue, payload, opts,
                                 opts.id ? *opts.id : impl_->generate_id(now), now);
    out.id = r.id;
    out.created = true;
    impl_->emit(std::move(r));
    impl_->finish(now);
    return out;
}

// LPUSH/RPUSH. RPUSH (front) puts the task at the front of priority 0, the priority every
// pushed task has: ahead of everything pushed before, behind ENQUEUEd higher priorities.
std::size_t broker::push(std::string_view queue, std::string_view payload, list_end end,
                         instant now) {
    impl_->tick(now);
    if (payload.size() > UINT32_MAX) return ready_count(queue, now);  // not storable
    rec_enqueue r = make_enqueue(impl_->config_, queue, payload, {}, impl_->generate_id(now), now);
    r.at_front = end == list_end::front;
    impl_->emit(std::move(r));
    // Like Redis, the reply counts the element just pushed even when a blocked client takes it.
    const detail::queue* q = impl_->find_queue(queue);
    const std::size_t ready = q != nullptr ? q->ready_count : 0;
    impl_->finish(now);
    return ready;
}

std::vector<leased_task> broker::lease(const lease_request& req, instant now,
                                       std::optional<waiter_id> block_as) {
    impl_->tick(now);
    const std::size_t count = std::max<std::size_t>(req.count, 1);
    std::vector<leased_task> out =
        impl_->take_leases(req.queues, count, req.lease_ms, req.session_bound, now);
    if (out.empty() && block_as) {
        waiter w;
        w.what = waiter::kind::lease;
        w.queues = req.queues;
        w.count = count;
        w.lease_ms = req.lease_ms;
        w.session_bound = req.session_bound;
        impl_->add_waiter(*block_as, std::move(w));
    }
    impl_->finish(now);
    return out;
}

std::vector<std::pair<std::string, std::string>> broker::pop(const pop_request& req, instant now,
                                                             std::optional<waiter_id> block_as) {
    impl_->tick(now);
    const std::size_t count = std::max<std::size_t>(req.count, 1);
    auto out = impl_->take_pops(req.queues, req.end, count, now);
    if (out.empty() && block_as) {
        waiter w;
        w.what = waiter::kind::pop;
        w.queues = req.queues;
        w.end = req.end;
        impl_->add_waiter(*block_as, std::move(w));
    }
    impl_->finish(now);
    return out;
}

bool broker::lease_current(std::string_view lease) const {
    return impl_->current_lease(lease) != nullptr;
}

op_status broker::ack(std::string_view lease, std::optional<std::string_view> result, instant now,
                      after_ack then) {
    impl_->tick(now);
    detail::task* t = impl_->current_lease(lease);
    if (t == nullptr) return op_status::lease_lost;
    std::string id(t->id());
    impl_->emit(rec_ack{now, id, std::string(result.value_or(""))});
    if (then == after_ack::forget) impl_->emit(rec_forget{now, std::move(id)});
    impl_->finish(now);
    return op_status::ok;
}

fail_outcome broker::fail(std::string_view lease, std::string_view error, fail_mode mode,
                          std::int64_t retry_ms, instant now) {
    impl_->tick(now);
    detail::task* t = impl_->current_lease(lease);
    if (t == nullptr) return fail_outcome::lease_lost;
    const bool retries_left = std::int64_t{t->attempt} < std::int64_t{t->max_retries} + 1;
    rec_fail r{now, std::string(t->id()), std::string(error), true, 0, false};
    if (mode != fail_mode::no_retry && retries_left) {
        std::int64_t delay_ms = std::max<std::int64_t>(retry_ms, 0);
        if (mode == fail_mode::policy) {
            const detail::task_extra* x = impl_->extra(t);
            const broker_config& c = impl_->config_;
            const bool own = x != nullptr && x->own_backoff;
            delay_ms = backoff_delay_ms(own ? x->backoff_base_ms : c.backoff_base_ms,
                                        own ? x->backoff_max_ms : c.backoff_max_ms, t->attempt,
                                        c.seed, t->id());
        }
        r.dead = false;
        r.retry_due_us = delay_ms > 0 ? add_ms(now.mono_us, delay_ms) : 0;
    }
    const fail_outcome outcome = r.dead ? fail_outcome::dead : fail_outcome::retry;
    impl_->emit(std::move(r));
    impl_->finish(now);
    return outcome;
}

op_status broker::release(std::string_view lease, std::int64_t delay_ms, instant now) {
    impl_->tick(now);
    detail::task* t = impl_->current_lease(lease);
    if (t == nullptr) return op_status::lease_lost;
    const std::int64_t due = delay_ms > 0 ? add_ms(now.mono_us, delay_ms) : 0;
    impl_->emit(rec_release{now, std::string(t->id()), due});
    impl_->finish(now);
    return op_status::ok;
}

op_status broker::extend(std::string_view lease, std::int64_t ms, instant now) {
    impl_->tick(now);
    detail::task* t = impl_->token_task(lease);
    if (t == nullptr) return op_status::lease_lost;
    if (t->state == task_state::cancelled && t->has(detail::flag_cancelled_in_lease)) {
        return op_status::cancelled;
    }
    if (t->state != task_state::leased) return op_status::lease_lost;
    if (ms <= 0) return op_status::invalid;
    impl_->emit(rec_extend{now, std::string(t->id()), add_ms(now.mono_us, ms)});
    impl_->finish(now);
    return op_status::ok;
}

}  // namespace conveyor::core
