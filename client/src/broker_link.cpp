#include "broker_link.hpp"

#include <conveyor/client/refusal.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace conveyor::client::detail {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

awaitable<void> sleep_for(milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

broker_link::broker_link(asio::any_io_executor ex, const worker_options& o, std::string role,
                         const log_fn& log, std::uint64_t& reconnects)
    : ex_(std::move(ex)), o_(o), role_(std::move(role)), log_(log), reconnects_(reconnects) {}

milliseconds broker_link::backoff() const {
    return reconnect_delay(failures_, o_.reconnect_min, o_.reconnect_max);
}

bool broker_link::count_refusal(const server_error& e) {
    ++failures_;
    const unsigned attempts = o_.refusal_retries + 1;
    const std::string where = to_display_string(o_.url);
    if (++refusals_ < attempts) {
        log(worker_log_level::error,
            where + " refused the " + role_ + " connection (" + std::to_string(refusals_) + " of " +
                std::to_string(attempts) + " attempts; next in " +
                std::to_string(backoff().count()) + " ms): " + explain_refusal(e));
        return false;
    }
    if (!gone_)
        gone_ = std::make_exception_ptr(error(make_error_code(errc::refused),
                                              "the broker at " + where + " refused the worker " +
                                                  std::to_string(attempts) +
                                                  " times; giving up: " + explain_refusal(e)));
    return true;
}

awaitable<void> broker_link::connect_first(time_point deadline) {
    connect_options options;
    options.tls = &o_.tls;
    for (;;) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now());
        options.connect_timeout = std::clamp(left, 1ms, o_.connect_timeout);
        std::string cause;
        bool refusal = false;
        try {
            auto c = co_await connection::connect(ex_, o_.url, options);
            conn_ = std::make_shared<connection>(std::move(c));
            co_return;
        } catch (const server_error& e) {
            refusal = is_permanent(classify_refusal(e));
            if (refusal && count_refusal(e)) std::rethrow_exception(gone_);
            if (!refusal) ++failures_;
            cause = explain_refusal(e);
        } catch (const error& e) {
            // TLS files, handshake or verification: retrying will not help.
            if (e.code() == errc::tls_error || e.code() == boost::system::errc::invalid_argument)
                throw;
            ++failures_;
            cause = e.what();
        }
        left = std::chrono::duration_cast<milliseconds>(deadline - steady::now());
        if (left <= 0ms)
            throw error(
                refusal ? make_error_code(errc::refused) : make_error_code(asio::error::timed_out),
                "cannot reach the broker at " + to_display_string(o_.url) + " within " +
                    std::to_string(o_.connect_timeout.count()) + " ms: " + cause);
        co_await sleep_for(std::min(left, backoff()));
    }
}

awaitable<std::shared_ptr<connection>> broker_link::get(std::function<bool()> give_up) {
    for (;;) {
        if (conn_ && conn_->is_open()) co_return conn_;
        if (give_up() || gone_) co_return nullptr;
        if (!connecting_) break;
        co_await sleep_for(100ms);
    }
    connecting_ = true;
    std::shared_ptr<connection> result;
    connect_options options;
    options.connect_timeout = o_.connect_timeout;
    options.tls = &o_.tls;
    for (;;) {
        co_await pause(give_up);
        if (give_up() || gone_) break;
        try {
            auto c = co_await connection::connect(ex_, o_.url, options);
            result = std::make_shared<connection>(std::move(c));
            break;
        } catch (const server_error& e) {
            refused(nullptr, e, "connect");
        } catch (const std::exception& e) {
            ++failures_;
            log(failures_ == 1 || failures_ % 20 == 0 ? worker_log_level::warn
                                                      : worker_log_level::debug,
                "cannot reconnect " + role_ + " connection: " + e.what() + " (attempt " +
                    std::to_string(failures_) + "; next in " + std::to_string(backoff().count()) +
                    " ms)");
        }
    }
    connecting_ = false;
    if (!result) co_return nullptr;
    conn_ = result;
    ++reconnects_;
    log(worker_log_level::info,
        "reconnected " + role_ + " connection to " + to_display_string(o_.url));
    co_return result;
}

void broker_link::broken(const std::shared_ptr<connection>& c, const std::exception& why) {
    if (!c || c != conn_) return;
    ++failures_;
    log(worker_log_level::warn, role_ + " connection lost: " + why.what());
    conn_->close();
    conn_.reset();
}

void broker_link::refused(const std::shared_ptr<connection>& c, const server_error& e,
                          const std::string& command) {
    const bool permanent = is_permanent(classify_refusal(e));
    if (permanent) {
        if (count_refusal(e) && on_refused_) {
            auto f = std::exchange(on_refused_, nullptr);  // once
            f(gone_);
        }
    } else {
        ++failures_;
        log(worker_log_level::error, command + " refused: " + e.what() + " (next attempt in " +
                                         std::to_string(backoff().count()) + " ms)");
    }
    if (c && c == conn_ && (permanent || !c->is_open())) {
        conn_->close();
        conn_.reset();
    }
}

awaitable<void> broker_link::pause(const std::function<bool()>& give_up) {
    const auto until = steady::now() + backoff();
    while (steady::now() < until && !give_up())
        co_await sleep_for(std::min<milliseconds>(
            100ms, std::chrono::duration_cast<milliseconds>(until - steady::now()) + 1ms));
}

void broker_link::close() {
    if (conn_) conn_->close();
    conn_.reset();
}

}  // namespace conveyor::client::detail
