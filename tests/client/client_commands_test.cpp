// Every typed call of conveyor::client::connection against the real broker.
#include "client_fixture.hpp"

#include <algorithm>

namespace conveyor::test {

using cc::fail_outcome;
using cc::lease_outcome;
using cc::task_state;
using status = cc::task_result::status;

TEST_F(client_test, ping_and_generic_command) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        EXPECT_EQ(co_await conn.ping(), "PONG");
        auto r = co_await conn.command("ECHO", "hi");
        EXPECT_EQ(r.text, "hi");
        // An error reply comes back as a value from command(), not as an exception.
        auto err = co_await conn.command("NOSUCHCOMMAND");
        EXPECT_TRUE(err.is_error());
        EXPECT_NE(err.text.find("ERR unknown command"), std::string::npos);
        EXPECT_TRUE(conn.is_open());
    });
}

TEST_F(client_test, enqueue_with_every_option_is_visible_in_task) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        auto id = co_await conn.enqueue("mail", "body",
                                        {.id = "job-1",
                                         .name = "send",
                                         .priority = 7,
                                         .delay_ms = 60000,
                                         .retries = 2,
                                         .backoff_base_ms = 10,
                                         .backoff_max_ms = 20,
                                         .timeout_ms = 5000,
                                         .ttl_ms = 120000});
        EXPECT_EQ(id, "job-1");
        auto t = co_await conn.task(id);
        CO_ASSERT_TRUE(t.has_value());
        EXPECT_EQ(t->id, "job-1");
        EXPECT_EQ(t->queue, "mail");
        EXPECT_EQ(t->name, "send");
        EXPECT_EQ(t->state, task_state::delayed);
        EXPECT_EQ(t->priority, 7);
        EXPECT_EQ(t->attempt, 0);
        EXPECT_FALSE(t->result);
        EXPECT_FALSE(t->error);
        EXPECT_GE(t->created_ms, before - 1000);
        EXPECT_EQ(co_await conn.qlen("mail"), 0);  // delayed, not ready

        // A known ID enqueues nothing and returns the same id.
        EXPECT_EQ(co_await conn.enqueue("mail", "other", {.id = "job-1"}), "job-1");
        // AT in the past: ready now; generated ids are distinct.
        auto a = co_await conn.enqueue("mail", "x", {.at_unix_ms = before - 1000});
        auto b = co_await conn.enqueue("mail", "y");
        EXPECT_NE(a, b);
        EXPECT_EQ(co_await conn.qlen("mail"), 2);
        auto ta = co_await conn.task(a);
        CO_ASSERT_TRUE(ta.has_value());
        EXPECT_EQ(ta->state, task_state::queued);
    });
}

TEST_F(client_test, lease_ack_and_result) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        auto low = co_await conn.enqueue("work", "first", {.name = "n1", .timeout_ms = 9000});
        auto high = co_await conn.enqueue("work", "second", {.priority = 5});
        auto tasks = co_await conn.lease("work", {.count = 5, .for_ms = 4000});
        CO_ASSERT_TRUE(tasks.size() == 2);
        EXPECT_EQ(tasks[0].id, high);  // higher priority first
        EXPECT_EQ(tasks[0].priority, 5);
        EXPECT_EQ(tasks[1].id, low);
        EXPECT_EQ(tasks[1].queue, "work");
        EXPECT_EQ(tasks[1].name, "n1");
        EXPECT_EQ(tasks[1].payload, "first");
        EXPECT_EQ(tasks[1].attempt, 1);
        EXPECT_EQ(tasks[1].lease_ms, 4000);
        EXPECT_EQ(tasks[1].timeout_ms, 9000);
        EXPECT_FALSE(tasks[1].lease.empty());

        EXPECT_EQ((co_await conn.result(low)).state, status::none);
        EXPECT_EQ(co_await conn.ack(tasks[1].lease, "the result"), lease_outcome::ok);
        EXPECT_EQ(co_await conn.ack(tasks[0].lease), lease_outcome::ok);
        EXPECT_EQ(co_await conn.ack(tasks[1].lease, "again"), lease_outcome::lease_lost);

        auto r = co_await conn.result(low);
        EXPECT_EQ(r.state, status::succeeded);
        EXPECT_EQ(r.value, "the result");
        auto r0 = co_await conn.result(high);
        EXPECT_TRUE(r0.succeeded());
        EXPECT_EQ(r0.value, "");
        auto t = co_await conn.task(low);
        CO_ASSERT_TRUE(t.has_value());
        EXPECT_EQ(t->state, task_state::succeeded);
        EXPECT_EQ(t->result, "the result");

        // Nothing left: a lease without BLOCK returns at once, empty.
        EXPECT_TRUE((co_await conn.lease("work")).empty());
        EXPECT_TRUE((co_await conn.lease("work", {.block_ms = 50})).empty());
    });
}

TEST_F(client_test, leases_from_several_queues_in_order) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        co_await conn.enqueue("lo", "l");
        co_await conn.enqueue("hi", "h");
        std::vector<std::string> queues{"hi", "lo"};
        auto tasks = co_await conn.lease(queues, {.count = 2});
        CO_ASSERT_TRUE(tasks.size() == 2);
        EXPECT_EQ(tasks[0].queue, "hi");
        EXPECT_EQ(tasks[1].queue, "lo");
    });
}

TEST_F(client_test, fail_retries_then_dead_letters_then_requeue) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        auto id = co_await conn.enqueue("jobs", "p", {.retries = 1});
        auto t1 = co_await conn.lease("jobs");
        CO_ASSERT_TRUE(t1.size() == 1);
        EXPECT_EQ(co_await conn.fail(t1[0].lease, "first try", {.retry_ms = 0}),
                  fail_outcome::retry);
        EXPECT_EQ(co_await conn.fail(t1[0].lease, "stale"), fail_outcome::lease_lost);
        auto t2 = co_await conn.lease("jobs", {.block_ms = 5000});
        CO_ASSERT_TRUE(t2.size() == 1);
        EXPECT_EQ(t2[0].attempt, 2);
        EXPECT_EQ(co_await conn.fail(t2[0].lease, "second try"), fail_outcome::dead);

        auto r = co_await conn.result(id);
        EXPECT_EQ(r.state, status::failed);
        EXPECT_EQ(r.value, "second try");
        auto t = co_await conn.task(id);
        CO_ASSERT_TRUE(t.has_value());
        EXPECT_EQ(t->state, task_state::dead);
        EXPECT_EQ(t->error, "second try");

        // (Expected vectors are named: g++ 12 rejects a braced list in a co_await expression.)
        const std::vector<std::string> just_id{id};
        EXPECT_EQ(co_await conn.dead("jobs"), just_id);
        auto other = co_await conn.enqueue("jobs", "q");
        auto t3 = co_await conn.lease("jobs");
        CO_ASSERT_TRUE(t3.size() == 1 && t3[0].id == other);
        EXPECT_EQ(co_await conn.fail(t3[0].lease, "give up", {.noretry = true}),
                  fail_outcome::dead);
        const std::vector<std::string> both{id, other}, just_other{other};
        EXPECT_EQ(co_await conn.dead("jobs"), both);
        EXPECT_EQ(co_await conn.dead("jobs", 1), just_id);

        EXPECT_TRUE(co_await conn.requeue(id));
        EXPECT_FALSE(co_await conn.requeue(id));  // no longer dead
        EXPECT_EQ(co_await conn.qlen("jobs"), 1);
        EXPECT_EQ(co_await conn.dead("jobs"), just_other);
    });
}

TEST_F(client_test, release_extend_and_cancel) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        auto id = co_await conn.enqueue("q", "p");
        auto t1 = co_await conn.lease("q");
        CO_ASSERT_TRUE(t1.size() == 1);
        EXPECT_EQ(co_await conn.release(t1[0].lease), lease_outcome::ok);
        EXPECT_EQ(co_await conn.release(t1[0].lease), lease_outcome::lease_lost);
        auto t2 = co_await conn.lease("q");
        CO_ASSERT_TRUE(t2.size() == 1);
        EXPECT_EQ(t2[0].attempt, 1);  // a release gives the attempt back
        EXPECT_EQ(co_await conn.extend(t2[0].lease, 60000), lease_outcome::ok);
        EXPECT_EQ(co_await conn.extend("no-such-lease", 1000), lease_outcome::lease_lost);

        EXPECT_TRUE(co_await conn.cancel(id));
        EXPECT_EQ(co_await conn.extend(t2[0].lease, 1000), lease_outcome::cancelled);
        EXPECT_EQ(co_await conn.ack(t2[0].lease), lease_outcome::lease_lost);
        EXPECT_FALSE(co_await conn.cancel(id));
        auto r = co_await conn.result(id);
        EXPECT_EQ(r.state, status::cancelled);
        auto t = co_await conn.task(id);
        CO_ASSERT_TRUE(t.has_value());
        EXPECT_EQ(t->state, task_state::cancelled);

        // RELEASE with DELAY: the task is not ready at once.
        co_await conn.enqueue("r", "p");
        auto t3 = co_await conn.lease("r");
        CO_ASSERT_TRUE(t3.size() == 1);
        EXPECT_EQ(co_await conn.release(t3[0].lease, 60000), lease_outcome::ok);
        EXPECT_EQ(co_await conn.qlen("r"), 0);
        auto t4 = co_await conn.task(t3[0].id);
        CO_ASSERT_TRUE(t4.has_value());
        EXPECT_EQ(t4->state, task_state::delayed);
    });
}

TEST_F(client_test, queues_qlen_and_qpurge) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        EXPECT_TRUE((co_await conn.queues()).empty());
        for (int i = 0; i < 3; ++i) co_await conn.enqueue("alpha", "x");
        co_await conn.enqueue("beta", "y");
        auto names = co_await conn.queues();
        std::sort(names.begin(), names.end());
        EXPECT_EQ(names, (std::vector<std::string>{"alpha", "beta"}));
        EXPECT_EQ(co_await conn.qlen("alpha"), 3);
        EXPECT_EQ(co_await conn.qlen("nothing"), 0);
        EXPECT_EQ(co_await conn.qpurge("alpha"), 3);
        EXPECT_EQ(co_await conn.qlen("alpha"), 0);
        EXPECT_EQ(co_await conn.qlen("beta"), 1);
    });
}

TEST_F(client_test, result_wait_returns_when_another_connection_acks) {
    run([&]() -> asio::awaitable<void> {
        auto producer = co_await connect();
        auto worker = co_await connect();
        auto id = co_await producer.enqueue("w", "ping");
        bool acked = false;
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [&]() -> asio::awaitable<void> {
                co_await sleep_for(100ms);
                auto t = co_await worker.lease("w");
                if (t.size() == 1)
                    acked = co_await worker.ack(t[0].lease, "pong") == lease_outcome::ok;
            },
            [](std::exception_ptr e) {
                if (e) ADD_FAILURE() << "worker coroutine threw";
            });
        auto r = co_await producer.result(id, 10000);
        EXPECT_TRUE(acked);
        EXPECT_EQ(r.state, status::succeeded);
        EXPECT_EQ(r.value, "pong");
        // Unknown ids: nil at once, even with WAIT; TASK says nullopt.
        EXPECT_EQ((co_await producer.result("nope", 0)).state, status::none);
        EXPECT_FALSE(co_await producer.task("nope"));
    });
}

TEST_F(client_test, server_errors_are_typed_and_keep_the_connection) {
    run([&]() -> asio::awaitable<void> {
        auto conn = co_await connect();
        std::string word, detail;
        try {
            co_await conn.enqueue("q", "p", {.priority = 42});
        } catch (const cc::server_error& e) {
            word = e.code_word();
            detail = e.detail();
            EXPECT_EQ(e.code(), cc::errc::server_error);
        }
        EXPECT_EQ(word, "ERR");
        EXPECT_NE(detail.find("PRIORITY"), std::string::npos);
        // Options the client cannot send fail before anything is written.
        auto ec = co_await error_of(conn.enqueue("q", "p", {.backoff_base_ms = 5}));
        EXPECT_EQ(ec, boost::system::errc::invalid_argument);
        EXPECT_EQ(co_await conn.ping(), "PONG");
        EXPECT_TRUE(conn.is_open());
    });
}

}  // namespace conveyor::test
