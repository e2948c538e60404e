// The worker runtime (worker.hpp). Everything runs on one executor, so the state below is
// plain data: four loops (leaser, lease keeper, reporter, status) and one supervisor per
// running task share it and wake each other through `changed`.
#include <conveyor/client/refusal.hpp>
#include <conveyor/client/worker.hpp>

#include "broker_link.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <unordered_map>

namespace conveyor::client {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;
using time_point = steady::time_point;
using namespace std::chrono_literals;

// ---- pure rules ---------------------------------------------------------------------------

milliseconds soft_limit(milliseconds hard, std::optional<milliseconds> configured) {
    milliseconds grace = configured ? *configured : std::min<milliseconds>(5000ms, hard / 10);
    return std::max<milliseconds>(0ms, hard - grace);
}

milliseconds reconnect_delay(unsigned failures, milliseconds min, milliseconds max) {
    if (failures == 0) return 0ms;
    milliseconds d = min;
    for (unsigned i = 1; i < failures && d < max; ++i) d *= 2;
    return std::min(d, max);
}

milliseconds kept_lease(milliseconds hard, milliseconds granted, const worker_options& o) {
    if (hard > 0ms) return hard + o.lease_margin;
    if (o.default_lease > 0ms) return o.default_lease;
    return granted > 0ms ? granted : 30000ms;
}

milliseconds extend_interval(milliseconds lease) {
    return std::max<milliseconds>(10ms, lease / 3);
}

std::size_t lease_capacity(std::size_t concurrency, std::size_t prefetch) {
    return std::max<std::size_t>(1, concurrency) * (1 + prefetch);
}

namespace {

using detail::broker_link;

// A broadcast wake-up: wait() completes at the next notify(). The timer never expires and
// cancel() leaves its expiry alone, so waiters do not wake each other; they re-check their
// condition after every wake-up.
class event {
public:
    explicit event(asio::any_io_executor ex) : timer_(std::move(ex), time_point::max()) {}
    void notify() { timer_.cancel(); }
    awaitable<void> wait() { co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable)); }

private:
    asio::steady_timer timer_;
};

struct route {
    task_handler handler;
    route_options options;
    std::size_t running = 0;
};

// A leased task from LEASE until its outcome is queued.
struct held_task {
    explicit held_task(asio::any_io_executor ex) : wake(std::move(ex)) {}
    leased_task task;
    route* where = nullptr;  // null: no handler for its name
    milliseconds hard{0};    // 0: no hard limit
    milliseconds lease{0};   // what EXTEND asks for
    time_point next_extend{};
    bool extending = false;
    bool running = false;
    bool lease_gone = false;               // cancelled or lost: nothing to report
    stop_reason stop = stop_reason::none;  // a stop from outside (cancel, shutdown)
    time_point stop_hard_at = time_point::max();
    std::shared_ptr<task_context> ctx;
    asio::steady_timer wake;  // the supervisor's
};
using task_ptr = std::shared_ptr<held_task>;

enum class outcome_kind { ack, fail, release };
struct outcome {
    outcome_kind kind = outcome_kind::ack;
    std::string lease;
    std::string id;
    std::string text;  // result or error
    bool noretry = false;
};

// What the handler coroutine left behind.
struct handler_end {
    bool done = false;
    std::exception_ptr error;
    handler_result result;
};

awaitable<handler_result> invoke(task_handler handler, std::shared_ptr<task_context> ctx) {
    co_return co_await handler(*ctx);
}

outcome release_of(const held_task& t) {
    return {outcome_kind::release, t.task.lease, t.task.id, {}, false};
}

std::string describe(const leased_task& t) {
    return "task " + t.id + (t.name.empty() ? "" : " (" + t.name + ")");
}

}  // namespace

struct worker::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor e, worker_options opts)
        : ex(e),
          o(std::move(opts)),
          lease_link(e, o, "lease", o.log, counters.reconnects),
          report_link(e, o, "report", o.log, counters.reconnects),
          changed(e),
          shutdown_timer(e),
          status_timer(e) {
        lease_link.on_refused([this](std::exception_ptr why) { refused_for_good(why); });
        report_link.on_refused([this](std::exception_ptr why) { refused_for_good(why); });
    }

    asio::any_io_executor ex;
    worker_options o;
    worker_stats counters;
    broker_link lease_link;
    broker_link report_link;
    std::map<std::string, route, std::less<>> routes;
    std::optional<route> fallback;
    std::unordered_map<std::string, task_ptr> held;  // by lease token
    std::deque<task_ptr> waiting;
    std::deque<outcome> outbox;
    std::size_t in_flight = 0;
    std::size_t running = 0;
    bool started = false, stopping = false, cold = false;
    bool leaser_done = false, gave_up = false;
    std::exception_ptr refused;  // a link refused for good: run() throws it
    std::size_t undelivered = 0;
    time_point delivery_deadline = time_point::max();
    event changed;
    asio::steady_timer shutdown_timer;
    asio::steady_timer status_timer;

    void log(worker_log_level l, const std::string& s) const {
        if (o.log) o.log(l, s);
    }

    // The broker refused the worker in a way waiting will not heal: stop now (cold), and let
    // run() throw `why` once everything has ended.
    void refused_for_good(std::exception_ptr why) {
        if (refused) return;
        refused = why;
        shutdown(true);
    }

    // ---- leasing ------------------------------------------------------------------------

    awaitable<void> leaser() {
        const auto capacity = lease_capacity(o.concurrency, o.prefetch);
        while (!stopping) {
            if (held.size() >= capacity) {
                co_await changed.wait();
                continue;
            }
            // Named, not a temporary inside co_await: g++ 12 destroys such temporaries twice.
            const std::function<bool()> give_up = [this] { return stopping; };
            auto c = co_await lease_link.get(give_up);
            if (!c) break;
            lease_options lo{
                .count = static_cast<int>(std::min<std::size_t>(capacity - held.size(), 10000)),
                .block_ms = o.lease_block.count()};
            std::vector<leased_task> got;
            bool pause = false;
            try {
                got = co_await c->lease(o.queues, lo);
                lease_link.answered();
            } catch (const server_error& e) {
                lease_link.refused(c, e, "LEASE");
                pause = true;  // after a refusal or, say, MISCONF: the backoff, then again
            } catch (const std::exception& e) {
                lease_link.broken(c, e);
            }
            // A dropped connection waits its backoff in get() instead.
            if (pause && c->is_open()) co_await lease_link.pause(give_up);
            for (auto& t : got) on_leased(std::move(t));
        }
        leaser_done = true;
        changed.notify();
    }

    void on_leased(leased_task lt) {
        auto t = std::make_shared<held_task>(ex);
        t->task = std::move(lt);
        if (auto it = routes.find(t->task.name); it != routes.end())
            t->where = &it->second;
        else if (fallback)
            t->where = &*fallback;
        t->hard = milliseconds(t->task.timeout_ms);
        if (t->hard <= 0ms && t->where && t->where->options.default_timeout)
            t->hard = *t->where->options.default_timeout;
        const milliseconds granted(t->task.lease_ms);
        t->lease = kept_lease(t->hard, granted, o);
        t->next_extend =
            steady::now() + extend_interval(granted > 0ms ? std::min(granted, t->lease) : t->lease);
        held.emplace(t->task.lease, t);
        if (stopping) return finish(t, release_of(*t));
        if (!t->where)
            return finish(t, outcome{outcome_kind::fail, t->task.lease, t->task.id,
                                     "no handler for task name '" + t->task.name + "'"});
        waiting.push_back(t);
        schedule();
    }

    // Starts waiting tasks, in lease order, while slots (and their routes' limits) allow.
    // The tasks are picked first and spawned after: a supervisor may run (and finish, and
    // call schedule() again) inside co_spawn, which must not happen mid-iteration.
    void schedule() {
        std::vector<task_ptr> start;
        for (auto it = waiting.begin(); it != waiting.end() && running < o.concurrency;) {
            auto t = *it;
            auto& r = *t->where;
            if (r.options.concurrency != 0 && r.running >= r.options.concurrency) {
                ++it;
                continue;
            }
            it = waiting.erase(it);
            ++running;
            ++r.running;
            t->running = true;
            start.push_back(std::move(t));
        }
        for (auto& t : start) {
            asio::co_spawn(ex, supervise(t), [self = shared_from_this(), t](std::exception_ptr e) {
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    self->log(worker_log_level::error,
                              describe(t->task) + ": runtime error: " + ex.what());
                }
            });
        }
    }

    // Queues the outcome (if any) and forgets the task.
    void finish(const task_ptr& t, std::optional<outcome> oc) {
        held.erase(t->task.lease);
        if (oc) outbox.push_back(std::move(*oc));
        if (stopping && held.empty() && delivery_deadline == time_point::max())
            delivery_deadline = steady::now() + o.delivery_timeout;
        changed.notify();
        if (!stopping) schedule();
    }

    // ---- running one task ---------------------------------------------------------------

    awaitable<void> supervise(task_ptr t) {
        auto ctx = std::make_shared<task_context>();
        ctx->id = t->task.id;
        ctx->lease = t->task.lease;
        ctx->name = t->task.name;
        ctx->queue = t->task.queue;
        ctx->payload = t->task.payload;
        ctx->attempt = t->task.attempt;
        ctx->soft = std::make_shared<stop_signal>(ex);
        ctx->hard = std::make_shared<stop_signal>(ex);
        const auto started_at = steady::now();
        if (t->hard > 0ms) {
            ctx->timeout = t->hard;
            ctx->hard_deadline = started_at + t->hard;
            ctx->soft_deadline = started_at + soft_limit(t->hard, o.soft_grace);
        }
        t->ctx = ctx;
        if (t->stop != stop_reason::none) ctx->soft->request(t->stop);
        log(worker_log_level::debug,
            describe(t->task) + ": started (attempt " + std::to_string(t->task.attempt) + ")");

        auto end = std::make_shared<handler_end>();
        asio::co_spawn(ex, invoke(t->where->handler, ctx),
                       [end, t, self = shared_from_this()](std::exception_ptr e, handler_result r) {
                           self->log(worker_log_level::debug,
                                     describe(t->task) + ": handler returned");
                           end->done = true;
                           end->error = e;
                           end->result = std::move(r);
                           t->wake.cancel();
                       });
        bool abandoned = false;
        while (!end->done) {
            const auto now = steady::now();
            if (now >= ctx->soft_deadline) ctx->soft->request(stop_reason::time_limit);
            if (now >= ctx->hard_deadline) ctx->hard->request(stop_reason::time_limit);
            if (now >= t->stop_hard_at) ctx->hard->request(t->stop);
            const auto hard_at = std::min(ctx->hard_deadline, t->stop_hard_at);
            const auto abandon_at =
                hard_at == time_point::max() ? hard_at : hard_at + o.abandon_after;
            if (now >= abandon_at) {
                abandoned = true;
                break;
            }
            auto next = abandon_at;
            for (auto at : {ctx->soft_deadline, ctx->hard_deadline, t->stop_hard_at})
                if (at > now) next = std::min(next, at);
            t->wake.expires_at(next);
            co_await t->wake.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        --running;
        --t->where->running;
        t->running = false;
        if (abandoned) {
            ++counters.abandoned;
            log(worker_log_level::warn, describe(t->task) + ": handler still running " +
                                            std::to_string(o.abandon_after.count()) +
                                            " ms after its hard stop; abandoned");
        }
        finish(t, decide(*t, *end));
    }

    std::optional<outcome> decide(const held_task& t, const handler_end& end) {
        const auto& ctx = *t.ctx;
        outcome oc{outcome_kind::fail, t.task.lease, t.task.id, {}, false};
        if (t.lease_gone) return std::nullopt;  // the broker already knows
        if (end.done && !end.error && end.result.ok) {
            oc.kind = outcome_kind::ack;
            oc.text = end.result.data;
        } else if (ctx.soft->reason() == stop_reason::time_limit ||
                   ctx.hard->reason() == stop_reason::time_limit) {
            oc.text = "time limit exceeded";
        } else if (t.stop == stop_reason::shutdown) {
            oc.kind = outcome_kind::release;
        } else if (end.error) {
            try {
                std::rethrow_exception(end.error);
            } catch (const std::exception& e) {
                oc.text = e.what();
            } catch (...) {
                oc.text = "handler threw a non-standard exception";
            }
        } else {
            oc.text = end.result.data;
            oc.noretry = !end.result.retry;
        }
        if (oc.kind == outcome_kind::fail)
            log(worker_log_level::info, describe(t.task) + ": failed: " + oc.text);
        else
            log(worker_log_level::debug,
                describe(t.task) +
                    (oc.kind == outcome_kind::ack ? ": succeeded" : ": stopped; to be released"));
        return oc;
    }

    // Soft stop now, hard after stop_grace (cancellation, lost lease, shutdown).
    void stop_task(const task_ptr& t, stop_reason why) {
        if (t->stop == stop_reason::none) t->stop = why;
        if (!t->running || !t->ctx) return;
        t->ctx->soft->request(why);
        t->stop_hard_at = std::min(t->stop_hard_at, steady::now() + o.stop_grace);
        t->wake.cancel();
    }

    // ---- keeping leases -----------------------------------------------------------------

    awaitable<void> keeper() {
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

    bool is_held(const task_ptr& t) const {
        auto it = held.find(t->task.lease);
        return it != held.end() && it->second == t;
    }

    awaitable<void> extend(task_ptr t) {
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
                    log(worker_log_level::warn,
                        describe(t->task) + ": EXTEND refused: " + e.what());
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
            describe(t->task) + (cancelled
                                     ? ": cancelled; stopping it"
                                     : ": lease lost (EXTEND answered LEASELOST); stopping it"));
        t->lease_gone = true;
        if (t->running) {
            stop_task(t, stop_reason::cancelled);
            co_return;
        }
        std::erase(waiting, t);
        finish(t, std::nullopt);
    }

    // ---- reporting outcomes -------------------------------------------------------------

    bool delivery_expired() const {
        return stopping && held.empty() && steady::now() >= delivery_deadline;
    }

    awaitable<void> reporter() {
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
                    std::to_string(outbox.size()) +
                        " outcome(s) could not be delivered: the broker " +
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

    // Sends one outcome on `c` and counts what the broker answered.
    awaitable<void> send_outcome(const std::shared_ptr<connection>& c, const outcome& oc) {
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

    awaitable<void> deliver(std::shared_ptr<connection> c, outcome oc) {
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

    void lost(const std::string& what, const char* command) {
        ++counters.lease_lost;
        log(worker_log_level::warn,
            what + ": " + command + " answered LEASELOST (the lease ended meanwhile); ignored");
    }

    // ---- shutdown and status ------------------------------------------------------------

    void shutdown(bool cold_now) {
        if (!stopping) {
            stopping = true;
            log(worker_log_level::info, "shutting down: releasing " +
                                            std::to_string(waiting.size()) + " waiting task(s); " +
                                            std::to_string(running) + " running");
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

    void stop_running() {
        for (auto& [lease, t] : held)
            if (t->running) stop_task(t, stop_reason::shutdown);
    }

    awaitable<void> status_loop() {
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
                    " running=" + std::to_string(s.running) +
                    " waiting=" + std::to_string(s.waiting) + " rate=" + buf + "/s");
        }
    }

    worker_stats snapshot() const {
        auto s = counters;
        s.running = running;
        s.waiting = waiting.size();
        s.unreported = outbox.size() + in_flight;
        return s;
    }

    // ---- run ----------------------------------------------------------------------------

    awaitable<void> run() {
        if (started) throw std::logic_error("worker::run() called twice");
        started = true;
        if (o.queues.empty()) throw std::invalid_argument("worker: no queue to lease from");
        const auto deadline = steady::now() + o.connect_timeout;
        co_await lease_link.connect_first(deadline);
        co_await report_link.connect_first(deadline);
        std::string queues;
        for (auto& q : o.queues) queues += (queues.empty() ? "" : ", ") + q;
        log(worker_log_level::info,
            "connected to " + to_display_string(o.url) + (uses_tls(o.url, o.tls) ? " (TLS)" : "") +
                "; leasing from " + queues + " (concurrency " + std::to_string(o.concurrency) +
                ", prefetch " + std::to_string(o.prefetch) + ")");

        int loops = 3;
        std::exception_ptr failure;
        auto on_end = [self = shared_from_this(), &loops, &failure](std::exception_ptr e) {
            if (e && !failure) {
                failure = e;
                self->shutdown(true);
            }
            --loops;
            self->changed.notify();
        };
        asio::co_spawn(ex, leaser(), on_end);
        asio::co_spawn(ex, keeper(), on_end);
        asio::co_spawn(ex, reporter(), on_end);
        asio::co_spawn(ex, status_loop(), [](std::exception_ptr) {});
        while (loops > 0) co_await changed.wait();
        status_timer.cancel();
        shutdown_timer.cancel();
        lease_link.close();
        report_link.close();
        if (failure) std::rethrow_exception(failure);
        if (refused) std::rethrow_exception(refused);
        auto s = snapshot();
        log(worker_log_level::info, "stopped: done=" + std::to_string(s.done) +
                                        " failed=" + std::to_string(s.failed) +
                                        " released=" + std::to_string(s.released));
    }
};

worker::worker(boost::asio::any_io_executor ex, worker_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

worker::~worker() = default;

void worker::on(std::string name, task_handler handler, route_options options) {
    impl_->routes[std::move(name)] = route{std::move(handler), options, 0};
}

void worker::on_any(task_handler handler, route_options options) {
    impl_->fallback = route{std::move(handler), options, 0};
}

awaitable<void> worker::run() {
    auto self = impl_;  // alive until run() ends, even if the worker object goes first
    co_await self->run();
}

void worker::request_shutdown(bool cold) {
    asio::post(impl_->ex, [self = impl_, cold] { self->shutdown(cold || self->stopping); });
}

worker_stats worker::stats() const {
    return impl_->snapshot();
}

std::size_t worker::undelivered() const {
    return impl_->undelivered;
}

}  // namespace conveyor::client
