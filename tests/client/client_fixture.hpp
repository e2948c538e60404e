// Shared by the client integration tests: a fixture that owns one broker process, and a
// runner that drives a test coroutine on its own io_context under a watchdog.
#pragma once

#include "conveyor_server.hpp"

#include <conveyor/client/connection.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace conveyor::test {

namespace asio = boost::asio;
namespace cc = conveyor::client;
using namespace std::chrono_literals;

// Fatal check inside a coroutine (gtest's ASSERT_* use `return`, not `co_return`).
#define CO_ASSERT_TRUE(cond)                                 \
    if (!(cond)) {                                           \
        ADD_FAILURE() << "CO_ASSERT_TRUE(" #cond ") failed"; \
        co_return;                                           \
    }

class client_test : public ::testing::Test {
protected:
    void SetUp() override { server_ = std::make_unique<conveyor_server>(); }
    void TearDown() override {
        if (HasFailure() && server_) std::cerr << "server log:\n" << server_->log() << "\n";
        server_.reset();  // kills the server
    }

    // Runs `test` (a coroutine) to its end, failing the test when it throws or when it has
    // not finished within `limit` (the watchdog; the io_context is then abandoned).
    void run(std::function<asio::awaitable<void>()> test, std::chrono::seconds limit = 30s) {
        asio::io_context io;
        bool done = false;
        asio::co_spawn(io, test(), [&](std::exception_ptr e) {
            done = true;
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                ADD_FAILURE() << "test coroutine threw: " << ex.what();
            }
        });
        io.run_for(limit);
        if (!done)
            ADD_FAILURE() << "watchdog: test did not finish within " << limit.count() << " s";
    }

    asio::awaitable<cc::connection> connect() {
        co_return co_await cc::connection::connect(server_->url());
    }

    std::unique_ptr<conveyor_server> server_;
};

// Waits for `ms` on the current executor.
inline asio::awaitable<void> sleep_for(std::chrono::milliseconds ms) {
    asio::steady_timer t(co_await asio::this_coro::executor, ms);
    co_await t.async_wait(asio::use_awaitable);
}

// Polls `pred` every few ms until it holds or `limit` passes; returns whether it held.
template <class Pred>
asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) co_return false;
        co_await sleep_for(2ms);
    }
    co_return true;
}

// The error code a coroutine ended with (success when it did not throw).
template <class T>
asio::awaitable<boost::system::error_code> error_of(asio::awaitable<T> op) {
    try {
        co_await std::move(op);
    } catch (const boost::system::system_error& e) {
        co_return e.code();
    }
    co_return boost::system::error_code{};
}

}  // namespace conveyor::test
