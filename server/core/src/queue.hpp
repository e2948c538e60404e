// A named queue: its ready tasks (one FIFO per priority, created on first use), its dead
// letters, the counts QSTATS reports, and the clients blocked on it.
#pragma once

#include "conveyor/core/broker.hpp"
#include "task.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace conveyor::core::detail {

// Deadline indexes order by (time, id): ids are unique and identical in a replay, so ties
// break the same way live and replayed, and an entry is found again from the task alone.
struct timer_key {
    std::int64_t at = 0;
    task* t = nullptr;
};
struct timer_order {
    bool operator()(const timer_key& a, const timer_key& b) const noexcept {
        if (a.at != b.at) return a.at < b.at;
        return a.t->id() < b.t->id();
    }
};
using timer_index = std::set<timer_key, timer_order>;

struct queue {
    explicit queue(std::string n) : name(std::move(n)) {}

    std::string name;
    // ready[p]: priority p, front = leased next. Higher p is served first.
    std::array<std::unique_ptr<std::deque<task*>>, max_priority + 1> ready;
    std::size_t ready_count = 0;
    std::size_t delayed_count = 0;
    std::size_t leased_count = 0;
    timer_index dead;      // at = dead-letter sequence: oldest first
    std::size_t refs = 0;  // tasks in any state (also ended ones) pointing here
    std::map<std::uint64_t, waiter_id> waiters;  // arrival order -> blocked LEASE/BLPOP
    bool woken = false;                          // already listed in the broker's woken queues
    bool maybe_unused = false;                   // already listed for the end-of-operation cleanup

    std::size_t held() const noexcept {
        return ready_count + delayed_count + leased_count + dead.size();
    }
    bool unused() const noexcept { return refs == 0 && waiters.empty(); }

    void push_back(task* t);
    void push_front(task* t);
    // The task leased next (front) or the newest one (back); nullptr when none is ready.
    task* peek(list_end end) const noexcept;
    // Removes a ready task; O(1) at either end, linear in between.
    void remove_ready(task* t) noexcept;
    // Hands every ready task to `fn` and empties the ready lists.
    template <class Fn>
    void drain_ready(Fn&& fn) {
        for (auto& fifo : ready) {
            if (!fifo) continue;
            for (task* t : *fifo) fn(t);
            fifo.reset();
        }
        ready_count = 0;
    }

private:
    std::deque<task*>& fifo_for(const task* t);
};

}  // namespace conveyor::core::detail
