// The broker's private state, shared by its source files:
//   broker.cpp         producer and consumer operations (decisions -> records)
//   broker_manage.cpp  management, introspection, time and replay
//   apply.cpp          apply(record): the only code that mutates task state
//   runtime.cpp        the operation frame (tick work, waking waiters, cleanup) and views
//
// Shape of every public mutating operation:
//   tick(now)      time-driven work due by `now` (promotion is derived, the rest are records),
//                  then waiters are served
//   decide         validate, pick tasks, compute deadlines and backoff
//   emit(record)   apply(record), then hand it to the record sink
//   finish(now)    serve waiters of queues that got ready tasks, wake RESULT waiters of tasks
//                  that ended, free erased tasks, drop unused queues
#pragma once

#include "conveyor/core/broker.hpp"
#include "queue.hpp"
#include "task.hpp"
#include "task_index.hpp"

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace conveyor::core {

struct waiter {
    enum class kind : std::uint8_t { lease, pop, result };
    kind what = kind::lease;
    std::vector<std::string> queues;  // lease/pop: served in this order
    std::size_t count = 1;
    std::optional<std::int64_t> lease_ms;
    bool session_bound = false;  // lease waiters: lease_request::session_bound
    list_end end = list_end::front;
    detail::task* target = nullptr;  // result waiters
    std::uint64_t arrival = 0;       // first come, first served across queues
};

struct broker::impl {
    impl(broker_config config, broker_events* events);
    ~impl();

    // ---- state ----
    broker_config config_;
    broker_events* events_ = nullptr;
    record_sink sink_;
    detail::task_index index_;
    std::map<std::string, std::unique_ptr<detail::queue>, std::less<>> queues_;
    std::unordered_map<const detail::task*, detail::task_extra> extras_;
    detail::timer_index delays_;     // delayed tasks by due time
    detail::timer_index leases_;     // leased tasks by lease deadline
    detail::timer_index ttls_;       // not-yet-leased tasks with a TTL
    detail::timer_index retention_;  // succeeded/cancelled tasks by end of retention
    std::unordered_map<waiter_id, waiter> waiters_;
    std::unordered_map<const detail::task*, std::vector<waiter_id>> result_waiters_;
    std::uint64_t last_id_ = 0;        // generated ids: max(last + 1, wall_ms * 1000), in hex
    bool id_counter_wrapped_ = false;  // see generate_id()
    std::uint64_t dead_seq_ = 0;
    std::uint64_t arrivals_ = 0;
    stats_snapshot counters_;  // counters only; gauges are computed in stats()
    std::size_t payload_bytes_ = 0;
    std::size_t id_bytes_ = 0;  // sum of the id lengths of the tasks in index_

    // ---- per-operation scratch (empty between operations) ----
    std::vector<detail::queue*> woken_;     // queues that got ready tasks
    std::vector<detail::task*> ended_;      // tasks that ended: RESULT waiters to wake
    std::vector<detail::task*> graveyard_;  // erased tasks, freed in settle()
    std::vector<detail::queue*> maybe_unused_;
    bool finishing_ = false;  // inside finish(): callbacks are running

    // ---- lookups and views (runtime.cpp) ----
    detail::queue* find_queue(std::string_view name) const;
    detail::queue& queue_for(std::string_view name);
    detail::task* find_task(std::string_view id) const { return index_.find(id); }
    // The task whose current lease is `token`, or nullptr (fencing).
    detail::task* current_lease(std::string_view token) const;
    // The task named by `token` whatever its state, if the token's delivery is its last one.
    detail::task* token_task(std::string_view token) const;
    const detail::task_extra* extra(const detail::task* t) const;
    detail::task_extra& extra_for(detail::task* t);
    task_view view(const detail::task* t) const;
    leased_task leased_view(const detail::task* t, std::int64_t lease_ms) const;
    std::int64_t lease_ms_for(const detail::task* t, std::optional<std::int64_t> asked) const;
    std::int64_t timeout_ms(const detail::task* t) const;
    std::string generate_id(instant now);

    // ---- the operation frame (runtime.cpp) ----
    void tick(instant now);
    void tick_work(instant now);
    void promote(std::int64_t now_us);
    void emit(const record& r);
    void finish(instant now);
    void serve_waiters(instant now);
    void serve(waiter_id id, instant now);
    void wake_results();
    void settle();
    std::vector<leased_task> take_leases(const std::vector<std::string>& queues, std::size_t count,
                                         std::optional<std::int64_t> lease_ms, bool session_bound,
                                         instant now);
    std::vector<std::pair<std::string, std::string>> take_pops(
        const std::vector<std::string>& queues, list_end end, std::size_t count, instant now);
    void add_waiter(waiter_id id, waiter w);
    void remove_waiter(waiter_id id);

    // ---- apply (apply.cpp) ----
    void apply(const record& r);
    void apply_one(const rec_enqueue& r);
    void apply_one(const rec_lease& r);
    void apply_one(const rec_ack& r);
    void apply_one(const rec_fail& r);
    void apply_one(const rec_release& r);
    void apply_one(const rec_extend& r);
    void apply_one(const rec_cancel& r);
    void apply_one(const rec_ttl_expired& r);
    void apply_one(const rec_requeue& r);
    void apply_one(const rec_pop& r);
    void apply_one(const rec_forget& r);
    void apply_one(const rec_purge& r);
    void apply_one(const rec_delete_queue& r);
    void make_ready(detail::task* t, bool at_front);
    void make_delayed(detail::task* t, std::int64_t due_us);
    void make_dead(detail::task* t, std::string_view error);
    void make_ended(detail::task* t, task_state state, std::int64_t now_us);
    void take_out(detail::task* t);  // leaves ready/delayed/leased/dead place and its TTL
    void drop_ttl(detail::task* t);
    void set_error(detail::task* t, std::string_view error);
    void erase_task(detail::task* t);
    void note_id(std::string_view id);
};

}  // namespace conveyor::core
