// Shared by the core unit tests: a fake clock and a broker_events that records what it got.
#pragma once

#include "conveyor/core/broker.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace conveyor::core::testing {

// Copies of what the broker delivered (its views die at the next call).
struct delivered {
    enum class kind { leased, popped, result };
    kind what = kind::leased;
    waiter_id waiter = 0;
    std::vector<std::string> ids;           // leased: task ids; result: the task id
    std::vector<std::string> leases;        // leased: tokens
    std::vector<std::string> properties;    // leased: each task's properties
    std::string queue;                      // popped
    std::string payload;                    // popped
    task_state state = task_state::queued;  // result
};

struct recording_events : broker_events {
    std::vector<delivered> got;

    void on_leased(waiter_id w, std::span<const leased_task> tasks) override {
        delivered d;
        d.what = delivered::kind::leased;
        d.waiter = w;
        for (const leased_task& t : tasks) {
            d.ids.emplace_back(t.id);
            d.leases.push_back(t.lease);
            d.properties.emplace_back(t.properties);
        }
        got.push_back(std::move(d));
    }
    void on_popped(waiter_id w, std::string_view queue, std::string_view payload) override {
        delivered d;
        d.what = delivered::kind::popped;
        d.waiter = w;
        d.queue = queue;
        d.payload = payload;
        got.push_back(std::move(d));
    }
    void on_result(waiter_id w, const task_view& task) override {
        delivered d;
        d.what = delivered::kind::result;
        d.waiter = w;
        d.ids.emplace_back(task.id);
        d.state = task.state;
        got.push_back(std::move(d));
    }
};

inline enqueue_options with_id(std::string id) {
    enqueue_options o;
    o.id = std::move(id);
    return o;
}
inline enqueue_options with_delay(std::int64_t ms) {
    enqueue_options o;
    o.delay_ms = ms;
    return o;
}
inline enqueue_options with_priority(int p) {
    enqueue_options o;
    o.priority = p;
    return o;
}

inline broker_config test_config() {
    broker_config c;
    c.default_lease_ms = 30000;
    c.default_retries = 3;
    c.lease_grace_ms = 5000;
    c.backoff_base_ms = 1000;
    c.backoff_max_ms = 600000;
    c.result_ttl_ms = 60000;
    c.seed = 42;
    return c;
}

// Starts far from zero on both clocks, so "0 = none" sentinels cannot pass by accident.
class core_test : public ::testing::Test {
protected:
    instant now{5'000'000'000, 1'700'000'000'000};
    recording_events events;
    broker b{test_config(), &events};

    void advance_ms(std::int64_t ms) {
        now.mono_us += ms * 1000;
        now.wall_ms += ms;
    }
    std::string enqueue(std::string_view queue, std::string_view payload,
                        enqueue_options opts = {}) {
        enqueue_result r = b.enqueue(queue, payload, opts, now);
        EXPECT_EQ(r.status, op_status::ok) << r.error;
        return r.id;
    }
    std::string enqueue_id(std::string_view queue, std::string id, enqueue_options opts = {}) {
        opts.id = std::move(id);
        return enqueue(queue, "payload", std::move(opts));
    }
    std::vector<leased_task> lease(std::vector<std::string> queues, std::size_t count = 1,
                                   std::optional<std::int64_t> lease_ms = std::nullopt) {
        return b.lease(lease_request{std::move(queues), count, lease_ms}, now);
    }
    // Leases exactly one task from `queue` and returns its token ("" when none).
    std::string lease_one(const std::string& queue,
                          std::optional<std::int64_t> lease_ms = std::nullopt) {
        auto got = lease({queue}, 1, lease_ms);
        return got.empty() ? std::string() : got[0].lease;
    }
    std::vector<std::string> lease_ids(const std::string& queue, std::size_t count) {
        std::vector<std::string> ids;
        for (const leased_task& t : lease({queue}, count)) ids.emplace_back(t.id);
        return ids;
    }
    task_state state_of(std::string_view id) {
        auto v = b.task(id, now);
        EXPECT_TRUE(v.has_value()) << id;
        return v ? v->state : task_state::queued;
    }
    int attempt_of(std::string_view id) {
        auto v = b.task(id, now);
        return v ? v->attempt : -1;
    }
};

}  // namespace conveyor::core::testing
