// The worker runtime (worker.hpp): its pure rules, leasing, running tasks, and run(). Its
// state, and what the rest of its methods promise: worker_impl.hpp; keeping leases, reporting
// outcomes, shutdown and status: worker_reporting.cpp.
#include "worker_impl.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace conveyor::client {

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

awaitable<void> worker::impl::leaser() {
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

void worker::impl::on_leased(leased_task lt) {
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

void worker::impl::schedule() {
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

void worker::impl::finish(const task_ptr& t, std::optional<outcome> oc) {
    held.erase(t->task.lease);
    if (oc) outbox.push_back(std::move(*oc));
    if (stopping && held.empty() && delivery_deadline == time_point::max())
        delivery_deadline = steady::now() + o.delivery_timeout;
    changed.notify();
    if (!stopping) schedule();
}

awaitable<void> worker::impl::supervise(task_ptr t) {
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
                       self->log(worker_log_level::debug, describe(t->task) + ": handler returned");
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
        const auto abandon_at = hard_at == time_point::max() ? hard_at : hard_at + o.abandon_after;
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

std::optional<outcome> worker::impl::decide(const held_task& t, const handler_end& end) {
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

void worker::impl::stop_task(const task_ptr& t, stop_reason why) {
    if (t->stop == stop_reason::none) t->stop = why;
    if (!t->running || !t->ctx) return;
    t->ctx->soft->request(why);
    t->stop_hard_at = std::min(t->stop_hard_at, steady::now() + o.stop_grace);
    t->wake.cancel();
}

awaitable<void> worker::impl::run() {
    if (started) throw std::logic_error("worker::run() called twice");
    started = true;
    if (o.queues.empty()) throw std::invalid_argument("worker: no queue to lease from");
    const auto deadline = steady::now() + o.connect_timeout;
    co_await lease_link.connect_first(deadline);
    co_await report_link.connect_first(deadline);
    std::string queues;
    for (auto& q : o.queues) queues += (queues.empty() ? "" : ", ") + q;
    log(worker_log_level::info, "connected to " + to_display_string(o.url) +
                                    (uses_tls(o.url, o.tls) ? " (TLS)" : "") + "; leasing from " +
                                    queues + " (concurrency " + std::to_string(o.concurrency) +
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
