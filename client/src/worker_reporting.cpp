// The worker runtime (worker.hpp, worker_impl.hpp): keeping leases alive, reporting outcomes,
// shutdown and the status line.
#include <conveyor/client/refusal.hpp>

#include "worker_impl.hpp"

#include <boost/asio/co_spawn.hpp>

#include <cstdio>

namespace conveyor::client {

using namespace std::chrono_literals;

awaitable<void> worker::impl::keeper() {
    asio::steady_timer tick(ex);
    while (!(stopping && leaser_done && held.empty())) {
        const auto now = steady::now();
        for (auto& [lease, t] : held) {
            if (t->extending || t->next_extend > now) continue;
            t->extending = true;
            asio::co_spawn(ex, extend(t), [self = shared_from_this()](std::exception_ptr e) {
                if (e) self->log(worker_log_level::error, "EXTEND failed unexpectedly");
            });
        }
        tick.expires_after(100ms);
        co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

awaitable<void> worker::impl::extend(task_ptr t) {
    // Named, not a temporary inside co_await: g++ 12 destroys such temporaries twice (and
    // this one owns a reference to the task).
    const std::function<bool()> give_up = [this, t] {
        return !is_held(t) || this->gave_up || this->refused;
    };
    auto c = co_await report_link.get(give_up);
    std::optional<lease_outcome> r;
    if (c) {
        try {
            r = co_await c->extend(t->task.lease, t->lease.count());
            report_link.answered();
        } catch (const server_error& e) {
            if (is_permanent(classify_refusal(e)) || !c->is_open())
                report_link.refused(c, e, "EXTEND");
            else
                log(worker_log_level::warn, describe(t->task) + ": EXTEND refused: " + e.what());
        } catch (const std::exception& e) {
            report_link.broken(c, e);
        }
    }
    t->extending = false;
    if (!r || !is_held(t)) co_return;  // retried at the next tick; or already finished
    if (*r == lease_outcome::ok) {
        t->next_extend = steady::now() + extend_interval(t->lease);
        co_return;
    }
    const bool cancelled = *r == lease_outcome::cancelled;
    ++(cancelled ? counters.cancelled : counters.lease_lost);
    log(cancelled ? worker_log_level::info : worker_log_level::warn,
        describe(t->task) + (cancelled ? ": cancelled; stopping it"
                                       : ": lease lost (EXTEND answered LEASELOST); stopping it"));
    t->lease_gone = true;
    if (t->running) {
        stop_task(t, stop_reason::cancelled);
        co_return;
    }
    std::erase(waiting, t);
    finish(t, std::nullopt);
}

awaitable<void> worker::impl::reporter() {
    for (;;) {
        if (outbox.empty()) {
            if (stopping && leaser_done && held.empty() && in_flight == 0) break;
            co_await changed.wait();
            continue;
        }
        const std::function<bool()> give_up = [this] { return delivery_expired() || refused; };
        auto c = co_await report_link.get(give_up);
        if (!c) {
            gave_up = true;
            undelivered += outbox.size();
            log(worker_log_level::error,
                std::to_string(outbox.size()) + " outcome(s) could not be delivered: the broker " +
                    (refused ? "refused the worker" : "is unreachable") +
                    "; their leases will expire and the tasks be redelivered");
            outbox.clear();
            continue;
        }
        while (!outbox.empty()) {
            ++in_flight;
            asio::co_spawn(ex, deliver(c, std::move(outbox.front())),
                           [self = shared_from_this()](std::exception_ptr e) {
                               --self->in_flight;
                               if (e) self->log(worker_log_level::error, "delivery failed");
                               self->changed.notify();
                           });
            outbox.pop_front();
        }
    }
}

awaitable<void> worker::impl::send_outcome(const std::shared_ptr<connection>& c,
                                           const outcome& oc) {
    const std::string what = "task " + oc.id;
    if (oc.kind == outcome_kind::ack) {
        auto r = co_await c->ack(oc.lease, std::string_view(oc.text));
        if (r == lease_outcome::ok)
            ++counters.done;
        else
            lost(what, "ACK");
    } else if (oc.kind == outcome_kind::fail) {
        auto r = co_await c->fail(oc.lease, oc.text, fail_options{.noretry = oc.noretry});
        if (r == fail_outcome::lease_lost)
            lost(what, "FAIL");
        else
            ++counters.failed;
    } else {
        auto r = co_await c->release(oc.lease);
        if (r == lease_outcome::ok)
            ++counters.released;
        else
            lost(what, "RELEASE");
    }
}

awaitable<void> worker::impl::deliver(std::shared_ptr<connection> c, outcome oc) {
    bool again = false;  // the outcome goes back to the outbox
    try {
        co_await send_outcome(c, oc);
        report_link.answered();
    } catch (const server_error& e) {
        if (is_permanent(classify_refusal(e)) || !c->is_open()) {
            report_link.refused(c, e,
                                oc.kind == outcome_kind::ack    ? "ACK"
                                : oc.kind == outcome_kind::fail ? "FAIL"
                                                                : "RELEASE");
            again = true;
        } else {
            log(worker_log_level::error,
                "task " + oc.id + ": broker refused the outcome: " + e.what());
            if (oc.kind == outcome_kind::ack && e.code_word() == "ERR") {
                // e.g. a result above --max-payload: the task fails instead of staying leased
                outbox.push_back(outcome{outcome_kind::fail, oc.lease, oc.id,
                                         std::string("result not stored: ") + e.what()});
            }
        }
    } catch (const std::exception& e) {
        report_link.broken(c, e);
        again = true;
    }
    if (!again) co_return;
    if (gave_up)
        ++undelivered;
    else
        outbox.push_front(std::move(oc));
}

void worker::impl::lost(const std::string& what, const char* command) {
    ++counters.lease_lost;
    log(worker_log_level::warn,
        what + ": " + command + " answered LEASELOST (the lease ended meanwhile); ignored");
}

void worker::impl::shutdown(bool cold_now) {
    if (!stopping) {
        stopping = true;
        log(worker_log_level::info, "shutting down: releasing " + std::to_string(waiting.size()) +
                                        " waiting task(s); " + std::to_string(running) +
                                        " running");
        auto left = std::move(waiting);
        waiting.clear();
        for (auto& t : left) finish(t, release_of(*t));
        shutdown_timer.expires_after(o.shutdown_timeout);
        shutdown_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || self->cold) return;
            self->log(worker_log_level::warn, "shutdown timeout: stopping running tasks");
            self->stop_running();
        });
        if (held.empty() && delivery_deadline == time_point::max())
            delivery_deadline = steady::now() + o.delivery_timeout;
        changed.notify();
        if (!cold_now) return;
    }
    if (cold) return;
    cold = true;
    shutdown_timer.cancel();
    log(worker_log_level::info, "cold shutdown: stopping " + std::to_string(running) +
                                    " running task(s) and releasing them");
    stop_running();
}

void worker::impl::stop_running() {
    for (auto& [lease, t] : held)
        if (t->running) stop_task(t, stop_reason::shutdown);
}

awaitable<void> worker::impl::status_loop() {
    std::uint64_t last = 0;
    while (o.status_interval > 0ms) {
        status_timer.expires_after(o.status_interval);
        auto [ec] = co_await status_timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        auto s = snapshot();
        const double rate = static_cast<double>(s.done + s.failed - last) * 1000.0 /
                            static_cast<double>(o.status_interval.count());
        last = s.done + s.failed;
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.1f", rate);
        log(worker_log_level::info,
            "status: done=" + std::to_string(s.done) + " failed=" + std::to_string(s.failed) +
                " running=" + std::to_string(s.running) + " waiting=" + std::to_string(s.waiting) +
                " rate=" + buf + "/s");
    }
}

worker_stats worker::impl::snapshot() const {
    auto s = counters;
    s.running = running;
    s.waiting = waiting.size();
    s.unreported = outbox.size() + in_flight;
    return s;
}

}  // namespace conveyor::client
