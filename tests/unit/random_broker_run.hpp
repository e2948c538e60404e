// A random command sequence against a live broker (fixed seed), for tests that rebuild the
// broker's state from its records: replayed as they come (core), or from the log on disk
// after compaction (storage).
#pragma once

#include "core_fixture.hpp"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace conveyor::core::testing {

class random_run {
public:
    // `on_record` (optional) also sees every record the live broker emits, in order.
    explicit random_run(std::uint32_t seed, record_sink on_record = {})
        : rng_(seed), on_record_(std::move(on_record)) {
        live_.set_record_sink([this](const record& r) {
            pending_.push_back(r);
            if (on_record_) on_record_(r);
        });
    }

    void step() {
        const int op = pick(0, 15);
        const std::string q = queues_[pick(0, 2)];
        if (op <= 2) {
            enqueue(q);
        } else if (op == 3) {
            live_.push(q, "p", pick(0, 1) ? list_end::front : list_end::back, now_);
        } else if (op <= 5) {
            auto got =
                live_.lease(lease_request{{q, queues_[pick(0, 2)]},
                                          std::size_t(pick(1, 3)),
                                          pick(0, 1) ? std::optional<std::int64_t>(pick(1, 3000))
                                                     : std::nullopt},
                            now_);
            for (const leased_task& t : got) {
                tokens_.push_back(t.lease);
                EXPECT_EQ(t.properties, properties_[std::string(t.id)]) << t.id;
            }
        } else if (op <= 9) {
            settle_a_lease(op);
        } else if (op == 10) {
            live_.cancel(any_id(), now_);
        } else if (op == 11) {
            live_.requeue(any_id(), now_);
        } else if (op == 12) {
            if (pick(0, 9) == 0) live_.purge(q, now_);
            if (pick(0, 19) == 0) live_.delete_queue(q, now_);
            live_.pop(pop_request{{q}, pick(0, 1) ? list_end::front : list_end::back, 1}, now_);
        } else {
            now_.mono_us += std::int64_t{pick(0, 1500)} * 1000;
            now_.wall_ms += pick(-50, 1500);
            live_.tick(now_);
        }
        sync();
    }

    void check() {
        live_.tick(now_);
        sync();
        check_against(replayed_);
    }

    // `other` (rebuilt from the records some other way) holds the same state as the live
    // broker, and the live broker's books add up. History counters (tasks failed so far) are
    // compared only when `other` saw every record (compaction drops history).
    void check_against(broker& other, bool same_history = true) {
        std::size_t retained = 0;
        for (const std::string& id : ids_) {
            auto a = live_.task(id, now_);
            if (a && (a->state == task_state::succeeded || a->state == task_state::cancelled)) {
                ++retained;
            }
            auto b = other.task(id, now_);
            ASSERT_EQ(a.has_value(), b.has_value()) << id;
            if (!a) continue;
            EXPECT_EQ(a->state, b->state) << id;
            EXPECT_EQ(a->attempt, b->attempt) << id;
            EXPECT_EQ(a->queue, b->queue) << id;
            EXPECT_EQ(a->error, b->error) << id;
            EXPECT_EQ(a->result, b->result) << id;
            EXPECT_EQ(a->updated_ms, b->updated_ms) << id;
        }
        EXPECT_EQ(live_.next_deadline(), other.next_deadline());
        const stats_snapshot s = live_.stats();
        const stats_snapshot r = other.stats();
        EXPECT_EQ(s.tasks_live, r.tasks_live);
        if (same_history) {
            EXPECT_EQ(s.tasks_failed, r.tasks_failed);
        }
        EXPECT_EQ(s.payload_bytes, r.payload_bytes);
        std::size_t held = 0;
        for (const queue_snapshot& qs : live_.queues_snapshot()) {
            held += qs.ready + qs.delayed + qs.leased + qs.dead;
            EXPECT_EQ(qs.ready, live_.ready_count(qs.name, now_));
            EXPECT_EQ(qs.dead, live_.dead_ids(qs.name, 0, now_).size());
        }
        EXPECT_EQ(held + retained, s.tasks_live);  // every task is in exactly one place
    }

    stats_snapshot stats() const { return live_.stats(); }
    broker& live() { return live_; }
    const instant& now() const { return now_; }

private:
    int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    void enqueue(const std::string& q) {
        enqueue_options o;
        o.priority = pick(0, 9);
        if (pick(0, 3) == 0) o.delay_ms = pick(0, 3000);
        if (pick(0, 5) == 0) o.at_unix_ms = now_.wall_ms + pick(-1000, 3000);
        o.retries = pick(0, 3);
        if (pick(0, 1)) {
            o.backoff_base_ms = pick(1, 500);
            o.backoff_max_ms = *o.backoff_base_ms + pick(0, 2000);
        }
        if (pick(0, 4) == 0) o.timeout_ms = pick(1, 2000);
        if (pick(0, 5) == 0) o.ttl_ms = pick(1, 4000);
        if (pick(0, 4) == 0) o.id = std::string("u").append(std::to_string(pick(0, 30)));
        // Derived from a pick already made: the random sequence stays as it was before
        // properties existed.
        if (o.priority % 3 == 0) o.properties.assign(std::size_t(o.priority) + 1, 'P');
        enqueue_result r = live_.enqueue(q, std::string(std::size_t(pick(0, 40)), 'x'), o, now_);
        ids_.insert(r.id);
        if (r.created) properties_[r.id] = o.properties;
    }

    void settle_a_lease(int op) {
        if (tokens_.empty()) return;
        const std::size_t i = std::size_t(pick(0, int(tokens_.size()) - 1));
        const std::string token = tokens_[i];
        if (pick(0, 3) != 0) tokens_.erase(tokens_.begin() + std::ptrdiff_t(i));  // some go stale
        if (op == 6) {
            live_.ack(token, "r", now_);
        } else if (op == 7) {
            const auto mode = static_cast<fail_mode>(pick(0, 2));
            live_.fail(token, "e", mode, pick(0, 1000), now_);
        } else if (op == 8) {
            live_.release(token, pick(0, 1) ? 0 : pick(1, 1000), now_);
        } else {
            live_.extend(token, pick(1, 3000), now_);
        }
    }

    std::string any_id() {
        if (ids_.empty()) return "none";
        auto it = ids_.begin();
        std::advance(it, pick(0, int(ids_.size()) - 1));
        return *it;
    }

    void sync() {
        for (const record& r : pending_) {
            if (auto* e = std::get_if<rec_enqueue>(&r)) ids_.insert(e->id);  // pushes too
            replayed_.replay(r);
        }
        pending_.clear();
    }

    std::mt19937 rng_;
    record_sink on_record_;
    instant now_{10'000'000, 1'700'000'000'000};
    broker live_{test_config()};
    broker replayed_{test_config()};
    std::vector<record> pending_;
    std::set<std::string> ids_;
    std::map<std::string, std::string> properties_;  // of tasks enqueued (pushes have none)
    std::vector<std::string> tokens_;
    const std::string queues_[3] = {"a", "b", "c"};
};

}  // namespace conveyor::core::testing
