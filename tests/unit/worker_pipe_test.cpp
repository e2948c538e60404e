// --pipe pool, driven directly (no broker), with examples/handler.py and small shell handlers.
#include "worker_fixture.hpp"

#include <conveyor/worker/process_handlers.hpp>

namespace conveyor::worker::test {
namespace {

const std::string example_handler =
    std::string("exec python3 ") + CONVEYOR_SOURCE_DIR + "/examples/handler.py";

class pipe_pool_test : public handler_test {
protected:
    void TearDown() override {
        if (pool_) {
            EXPECT_TRUE(run_void(pool_->shutdown(2s), 10s));
        }
        pool_.reset();
        handler_test::TearDown();
    }
    client::task_handler start_pool(std::string command, std::size_t processes = 1) {
        pool_ = make_pipe_pool(io.get_executor(), {std::move(command), processes});
        return pool_->handler();
    }
    std::optional<handler_result> task(client::task_handler& handler, std::string name,
                                       std::string payload) {
        auto c = make_context(std::move(name), std::move(payload));
        c.id = ctx.id + "-" + c.id;  // ids unique within the test
        return run_task(handler, c);
    }

    std::unique_ptr<pipe_pool> pool_;
};

TEST_F(pipe_pool_test, echo_tasks_succeed_one_after_another) {
    auto handler = start_pool(example_handler);
    for (std::string payload : {"hello", "", "ünïcødé \"quoted\"\n"}) {
        auto result = task(handler, "echo", payload);
        ASSERT_TRUE(result);
        EXPECT_TRUE(result->ok) << result->data;
        EXPECT_EQ(result->data, payload);
    }
}

TEST_F(pipe_pool_test, failure_without_retry) {
    auto handler = start_pool(example_handler);
    auto result = task(handler, "fail", "x");
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_FALSE(result->retry);
    EXPECT_EQ(result->data, "failed on purpose");
}

TEST_F(pipe_pool_test, a_payload_that_is_not_utf8_goes_base64) {
    auto handler = start_pool(example_handler);
    auto result = task(handler, "echo", std::string("\xff\xfe\0a", 4));
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->ok) << result->data;
    EXPECT_EQ(result->data, "//4AYQ==");  // the example echoes the payload field as sent
}

TEST_F(pipe_pool_test, a_handler_that_exits_mid_task_is_replaced) {
    auto handler = start_pool(example_handler);
    auto crashed = task(handler, "crash", "");
    ASSERT_TRUE(crashed);
    EXPECT_FALSE(crashed->ok);
    EXPECT_TRUE(crashed->retry);
    EXPECT_EQ(crashed->data,
              "the handler process ended while running the task (handler process exited with "
              "status 3; replaced)");
    auto next = task(handler, "echo", "after");
    ASSERT_TRUE(next);
    EXPECT_TRUE(next->ok) << next->data;
    EXPECT_EQ(next->data, "after");
}

TEST_F(pipe_pool_test, soft_limit_sends_a_cancel_line) {
    auto handler = start_pool(example_handler);
    auto c = make_context("sleep", "30000");
    auto timer = std::make_shared<asio::steady_timer>(io, 300ms);
    timer->async_wait([&](auto) { c.soft->request(client::stop_reason::time_limit); });
    auto result = run_task(handler, c);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_EQ(result->data, "cancelled");  // the handler's own answer to the cancel line
    auto next = task(handler, "echo", "same process");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->data, "same process");
}

TEST_F(pipe_pool_test, hard_limit_kills_the_handler_and_replaces_it) {
    become_subreaper();
    // This handler ignores cancel lines and SIGTERM; only SIGKILL ends it.
    auto ready = path("ready");
    auto handler = start_pool("trap '' TERM; echo $$ >> " + ready.string() +
                              "; while read line; do sleep 30; done");
    auto c = make_context("job", "");
    request_when_file_exists(c.soft, ready, 100ms);
    request_when_file_exists(c.hard, ready, 400ms);
    auto result = run_task(handler, c);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_EQ(result->data,
              "time limit exceeded: the handler process was killed at the hard limit");
    pid_t pgid = std::stoi(read_file(ready));  // the first line: the killed process
    EXPECT_TRUE(group_gone(pgid));
    pool_.reset();  // the replacement ignores SIGTERM too: no grace for it
}

TEST_F(pipe_pool_test, the_example_handler_is_replaced_after_a_hard_kill) {
    auto handler = start_pool(example_handler);
    auto c = make_context("sleep", "30000");
    auto timer = std::make_shared<asio::steady_timer>(io, 300ms);
    timer->async_wait([&](auto) { c.hard->request(client::stop_reason::time_limit); });
    auto result = run_task(handler, c);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_TRUE(result->data.starts_with("time limit exceeded")) << result->data;
    auto next = task(handler, "echo", "replacement");
    ASSERT_TRUE(next);
    EXPECT_TRUE(next->ok) << next->data;
    EXPECT_EQ(next->data, "replacement");
}

TEST_F(pipe_pool_test, garbage_is_a_protocol_error_and_the_handler_is_replaced) {
    auto handler = start_pool("read line; echo 'not json'; sleep 30");
    auto result = task(handler, "job", "x");
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_TRUE(result->data.starts_with(
        "the handler wrote a line that is not a JSON object: not json (handler process killed "
        "by signal 9 (SIGKILL); replaced)"))
        << result->data;
}

TEST_F(pipe_pool_test, a_reply_with_the_wrong_id_is_a_protocol_error) {
    auto handler = start_pool(R"(read line; echo '{"id":"other","ok":true}'; sleep 30)");
    auto result = task(handler, "job", "x");
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_TRUE(result->data.starts_with("the handler answered task other while running task"))
        << result->data;
}

TEST_F(pipe_pool_test, a_json_result_is_stored_as_its_text) {
    auto handler = start_pool(R"sh(while read line; do
        id=$(printf '%s' "$line" | sed 's/^{"id":"\([^"]*\)".*/\1/')
        printf '{"id":"%s","ok":true,"result":{"n":[1,2]}}\n' "$id"; done)sh");
    auto result = task(handler, "job", "x");
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->ok) << result->data;
    EXPECT_EQ(result->data, R"({"n":[1,2]})");
}

TEST_F(pipe_pool_test, each_process_runs_one_task_at_a_time) {
    auto handler = start_pool(example_handler, 2);
    auto a = make_context("sleep", "300"), b = make_context("sleep", "300"),
         c = make_context("echo", "third");
    auto three = [&]() -> asio::awaitable<std::string> {
        using namespace asio::experimental::awaitable_operators;
        auto [ra, rb, rc] = co_await (handler(a) && handler(b) && handler(c));
        co_return ra.data + "," + rb.data + "," + rc.data;
    };
    auto out = run(three());
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "slept,slept,third");
}

TEST_F(pipe_pool_test, shutdown_ends_every_process) {
    become_subreaper();
    auto ready0 = path("ready0");
    auto handler = start_pool(
        "trap '' TERM; echo $$ >> " + ready0.string() + "; while :; do sleep 0.05; done", 2);
    asio::steady_timer timer(io);
    std::string pids;
    for (int i = 0; i < 1000 && std::count(pids.begin(), pids.end(), '\n') < 2; ++i) {
        std::this_thread::sleep_for(5ms);
        pids = read_file(ready0);
    }
    auto started = std::chrono::steady_clock::now();
    EXPECT_TRUE(run_void(pool_->shutdown(200ms)));
    EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms) << "SIGTERM was ignored";
    std::istringstream in(pids);
    for (pid_t pid; in >> pid;) EXPECT_TRUE(group_gone(pid));
    auto after = task(handler, "echo", "x");
    ASSERT_TRUE(after);
    EXPECT_FALSE(after->ok);
    EXPECT_EQ(after->data, "the pipe handler pool is shut down");
}

}  // namespace
}  // namespace conveyor::worker::test
