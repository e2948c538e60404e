// Shared by the worker_*_test.cpp files: drive a task_handler on an io_context with a
// hand-made task_context, with a time limit on every run.
#pragma once

#include <conveyor/client/worker_types.hpp>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace conveyor::worker::test {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using client::handler_result;

class handler_test : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("conveyor-worker-test-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
        ctx = make_context();
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    client::task_context make_context(std::string name = "job", std::string payload = "") {
        client::task_context c;
        c.id = "t-" + std::to_string(++next_id_);
        c.lease = "l-1";
        c.name = std::move(name);
        c.queue = "q";
        c.payload = std::move(payload);
        c.attempt = 2;
        c.soft = std::make_shared<client::stop_signal>(io.get_executor());
        c.hard = std::make_shared<client::stop_signal>(io.get_executor());
        return c;
    }

    // Runs `work` on io until it completes; fails the test (returns nullopt) after `limit`.
    template <class T>
    std::optional<T> run(asio::awaitable<T> work, std::chrono::milliseconds limit = 15s) {
        std::optional<T> out;
        std::exception_ptr error;
        bool done = false;
        asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
            done = true;
            error = e;
            if (!e) out = std::move(value);
        });
        drive(done, limit);
        if (error) std::rethrow_exception(error);
        return out;
    }

    bool run_void(asio::awaitable<void> work, std::chrono::milliseconds limit = 15s) {
        std::exception_ptr error;
        bool done = false;
        asio::co_spawn(io, std::move(work), [&](std::exception_ptr e) {
            done = true;
            error = e;
        });
        drive(done, limit);
        if (error) std::rethrow_exception(error);
        return done;
    }

    std::optional<handler_result> run_task(client::task_handler& handler, client::task_context& c,
                                           std::chrono::milliseconds limit = 15s) {
        return run(handler(c), limit);
    }

    // Raises `signal` once `file` exists (the script under test writes it when ready),
    // `delay` later.
    void request_when_file_exists(std::shared_ptr<client::stop_signal> signal,
                                  std::filesystem::path file, std::chrono::milliseconds delay,
                                  client::stop_reason why = client::stop_reason::time_limit) {
        auto watcher = [](asio::io_context& io, std::shared_ptr<client::stop_signal> signal,
                          std::filesystem::path file, std::chrono::milliseconds delay,
                          client::stop_reason why) -> asio::awaitable<void> {
            asio::steady_timer timer(io);
            while (!std::filesystem::exists(file)) {
                timer.expires_after(5ms);
                co_await timer.async_wait(asio::use_awaitable);
            }
            timer.expires_after(delay);
            co_await timer.async_wait(asio::use_awaitable);
            signal->request(why);
        };
        asio::co_spawn(io, watcher(io, std::move(signal), std::move(file), delay, why),
                       [](std::exception_ptr e) {
                           if (e) std::rethrow_exception(e);
                       });
    }

    std::filesystem::path path(const std::string& name) const { return dir_ / name; }

    static std::string read_file(const std::filesystem::path& p) {
        std::ifstream in(p);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    // True once no process of group `pgid` exists (kill(-pgid, 0) fails with ESRCH) within
    // `limit`. Orphaned members are re-parented to this test process (a subreaper, see
    // become_subreaper) and reaped here, as init would on an ordinary system.
    static bool group_gone(pid_t pgid, std::chrono::milliseconds limit = 3s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            while (::waitpid(-1, nullptr, WNOHANG) > 0) {
            }
            if (::kill(-pgid, 0) != 0 && errno == ESRCH) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(10ms);
        }
    }
    static void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

    asio::io_context io;
    client::task_context ctx;

private:
    void drive(bool& done, std::chrono::milliseconds limit) {
        io.restart();
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done && std::chrono::steady_clock::now() < deadline) {
            io.run_one_for(deadline - std::chrono::steady_clock::now());
        }
        EXPECT_TRUE(done) << "the handler did not finish within " << limit.count() << " ms";
    }

    std::filesystem::path dir_;
    int next_id_ = 0;
};

}  // namespace conveyor::worker::test
