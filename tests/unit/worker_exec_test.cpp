// --exec handler, driven directly (no broker): one /bin/sh -c per task.
#include "worker_fixture.hpp"

#include <conveyor/worker/process_handlers.hpp>

namespace conveyor::worker::test {
namespace {

class exec_handler_test : public handler_test {
protected:
    client::task_handler exec(std::string command, std::size_t max_output = 1024 * 1024,
                              std::size_t stderr_tail = 4096) {
        return make_exec_handler(io.get_executor(), {std::move(command), max_output, stderr_tail});
    }
};

TEST_F(exec_handler_test, stdout_is_the_result_and_the_task_is_in_env_and_stdin) {
    auto handler =
        exec(R"(printf '%s|%s|%s|%s|' "$CONVEYOR_TASK_ID" "$CONVEYOR_TASK_NAME" "$CONVEYOR_QUEUE" )"
             R"("$CONVEYOR_ATTEMPT"; cat)");
    ctx.payload = "hello\nworld";
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->ok) << result->data;
    EXPECT_EQ(result->data, ctx.id + "|job|q|2|hello\nworld");
}

TEST_F(exec_handler_test, binary_payload_and_output_round_trip) {
    auto handler = exec("cat");
    ctx.payload = std::string("a\0b\xff\xfe\n", 6);
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->ok);
    EXPECT_EQ(result->data, ctx.payload);
}

TEST_F(exec_handler_test, a_command_that_ignores_a_large_payload_still_succeeds) {
    auto handler = exec("echo done");
    ctx.payload = std::string(4 * 1024 * 1024, 'x');  // far more than a pipe buffer
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->ok) << result->data;
    EXPECT_EQ(result->data, "done\n");
}

TEST_F(exec_handler_test, nonzero_exit_fails_with_the_tail_of_stderr) {
    auto handler = exec("echo ignored; echo 'first line' >&2; echo 'last line' >&2; exit 3");
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_TRUE(result->retry);
    EXPECT_EQ(result->data, "first line\nlast line");
}

TEST_F(exec_handler_test, only_the_last_stderr_bytes_are_kept) {
    auto handler = exec("i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done; exit 1",
                        1024 * 1024, 16);
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_LE(result->data.size(), 16u);
    EXPECT_TRUE(result->data.ends_with("line1999")) << result->data;
}

TEST_F(exec_handler_test, exit_without_stderr_reports_the_status) {
    auto handler = exec("exit 5");
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_EQ(result->data, "command exited with status 5");
}

TEST_F(exec_handler_test, death_by_signal_is_reported) {
    auto handler = exec("kill -9 $$");
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_EQ(result->data, "command killed by signal 9 (SIGKILL)");
}

TEST_F(exec_handler_test, output_over_the_limit_fails_the_task) {
    auto handler = exec("yes", 1000);  // never ends by itself: the overflow kills it
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_EQ(result->data, "output exceeds the limit of 1000 bytes");
}

TEST_F(exec_handler_test, output_exactly_at_the_limit_is_kept) {
    auto handler = exec("head -c 1000 /dev/zero", 1000);
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->ok) << result->data;
    EXPECT_EQ(result->data.size(), 1000u);
}

TEST_F(exec_handler_test, the_child_is_reaped_and_leftover_processes_are_killed) {
    become_subreaper();
    // The background sleep keeps stdout open: without the group kill the task would hang.
    auto handler = exec("sleep 30 & echo $$");
    auto result = run_task(handler, ctx, 5s);
    ASSERT_TRUE(result);
    ASSERT_TRUE(result->ok) << result->data;
    pid_t pid = std::stoi(result->data);
    errno = 0;
    EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1) << "the leader is already reaped";
    EXPECT_EQ(errno, ECHILD);
    EXPECT_TRUE(group_gone(pid));
}

TEST_F(exec_handler_test, soft_stop_sends_sigterm_to_the_process_group) {
    auto ready = path("ready");
    auto handler =
        exec("trap 'echo got TERM >&2; exit 7' TERM; echo $$ > " + ready.string() + ".tmp; mv " +
             ready.string() + ".tmp " + ready.string() + "; while :; do sleep 0.05; done");
    request_when_file_exists(ctx.soft, ready, 0ms);
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    // The shell may also report the sleep it was running as "Terminated".
    EXPECT_TRUE(result->data.starts_with("time limit exceeded: ")) << result->data;
    EXPECT_TRUE(result->data.ends_with("got TERM")) << result->data;
}

TEST_F(exec_handler_test, hard_stop_kills_a_group_that_ignores_sigterm) {
    become_subreaper();
    auto ready = path("ready");
    auto handler = exec("trap '' TERM; sleep 30 & echo $$ > " + ready.string() + ".tmp; mv " +
                        ready.string() + ".tmp " + ready.string() + "; wait; wait; wait");
    request_when_file_exists(ctx.soft, ready, 0ms);
    request_when_file_exists(ctx.hard, ready, 300ms);
    auto started = std::chrono::steady_clock::now();
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms) << "SIGTERM was ignored";
    EXPECT_FALSE(result->ok);
    EXPECT_EQ(result->data, "time limit exceeded: command killed by signal 9 (SIGKILL)");
    pid_t pgid = std::stoi(read_file(ready));
    EXPECT_TRUE(group_gone(pgid)) << "a process of group " << pgid << " survived";
}

TEST_F(exec_handler_test, a_missing_command_fails_with_the_shell_error) {
    auto handler = exec("/nonexistent/program");
    auto result = run_task(handler, ctx);
    ASSERT_TRUE(result);
    EXPECT_FALSE(result->ok);
    EXPECT_NE(result->data.find("/nonexistent/program"), std::string::npos) << result->data;
}

TEST_F(exec_handler_test, tasks_run_concurrently) {
    auto handler = exec("sleep 0.3; echo $CONVEYOR_TASK_ID");
    auto a = make_context(), b = make_context();
    auto both = [&]() -> asio::awaitable<std::string> {
        using namespace asio::experimental::awaitable_operators;
        auto [ra, rb] = co_await (handler(a) && handler(b));
        co_return ra.data + rb.data;
    };
    auto started = std::chrono::steady_clock::now();
    auto out = run(both());
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, a.id + "\n" + b.id + "\n");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 590ms);
}

}  // namespace
}  // namespace conveyor::worker::test
