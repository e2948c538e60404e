// The typed commands without a socket: request bytes, byte-exact, and the interpretation of
// every reply shape the broker sends (decoded from wire bytes by the real reply decoder).
#include <conveyor/client/commands.hpp>
#include <conveyor/client/error.hpp>
#include <conveyor/protocol/resp_reply_decoder.hpp>

#include <boost/system/errc.hpp>

#include <gtest/gtest.h>

namespace cc = conveyor::client;
using conveyor::protocol::reply_status;
using conveyor::protocol::resp_reply_decoder;

namespace {

std::string encoded(const cc::command_args& args) {
    std::string out;
    cc::encode_request(out, args);
    return out;
}

cc::reply decode(std::string_view bytes) {
    resp_reply_decoder decoder;
    cc::reply r;
    auto res = decoder.feed(bytes, r);
    EXPECT_EQ(res.status, reply_status::reply) << bytes;
    EXPECT_EQ(res.consumed, bytes.size()) << bytes;
    return r;
}

template <class F>
std::string server_error_word(F&& f) {
    try {
        f();
    } catch (const cc::server_error& e) {
        EXPECT_EQ(e.code(), cc::errc::server_error);
        return e.code_word();
    }
    return "";
}

template <class F>
bool throws_invalid_argument(F&& f) {
    try {
        f();
    } catch (const cc::error& e) {
        return e.code() == boost::system::errc::invalid_argument;
    }
    return false;
}

template <class F>
bool throws_unexpected_reply(F&& f) {
    try {
        f();
    } catch (const cc::error& e) {
        return e.code() == cc::errc::unexpected_reply;
    }
    return false;
}

}  // namespace

TEST(client_request, encodes_an_array_of_bulk_strings) {
    EXPECT_EQ(encoded({"PING"}), "*1\r\n$4\r\nPING\r\n");
    EXPECT_EQ(encoded({"ACK", "l1", ""}), "*3\r\n$3\r\nACK\r\n$2\r\nl1\r\n$0\r\n\r\n");
}

TEST(client_request, payload_bytes_are_sent_verbatim) {
    using namespace std::string_literals;
    auto payload = "a\r\n\0b"s;
    EXPECT_EQ(encoded(cc::request::enqueue("q", payload)),
              "*3\r\n$7\r\nENQUEUE\r\n$1\r\nq\r\n$5\r\na\r\n\0b\r\n"s);
}

TEST(client_request, encoding_appends_so_requests_coalesce) {
    std::string out;
    cc::encode_request(out, cc::request::ping());
    cc::encode_request(out, cc::request::qlen("q"));
    EXPECT_EQ(out, "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nQLEN\r\n$1\r\nq\r\n");
}

TEST(client_request, enqueue_without_options_sends_queue_and_payload_only) {
    EXPECT_EQ(cc::request::enqueue("q", "p"), (cc::command_args{"ENQUEUE", "q", "p"}));
}

TEST(client_request, enqueue_sends_every_option_in_documented_order) {
    cc::enqueue_options o{.id = "job-1",
                          .name = "send",
                          .priority = 7,
                          .delay_ms = 250,
                          .retries = 4,
                          .backoff_base_ms = 100,
                          .backoff_max_ms = 5000,
                          .timeout_ms = 30000,
                          .ttl_ms = 60000};
    EXPECT_EQ(
        cc::request::enqueue("emails", "body", o),
        (cc::command_args{"ENQUEUE",  "emails", "body",    "ID",    "job-1",   "NAME", "send",
                          "PRIORITY", "7",      "DELAY",   "250",   "RETRIES", "4",    "BACKOFF",
                          "100",      "5000",   "TIMEOUT", "30000", "TTL",     "60000"}));
    EXPECT_EQ(cc::request::enqueue("q", "p", {.at_unix_ms = 1700000000000}),
              (cc::command_args{"ENQUEUE", "q", "p", "AT", "1700000000000"}));
}

TEST(client_request, half_a_backoff_is_rejected_before_sending) {
    EXPECT_TRUE(
        throws_invalid_argument([] { cc::request::enqueue("q", "p", {.backoff_base_ms = 1}); }));
    EXPECT_TRUE(
        throws_invalid_argument([] { cc::request::enqueue("q", "p", {.backoff_max_ms = 1}); }));
}

TEST(client_request, lease_options_come_before_from) {
    std::vector<std::string> queues{"hi", "lo"};
    EXPECT_EQ(cc::request::lease(queues), (cc::command_args{"LEASE", "FROM", "hi", "lo"}));
    EXPECT_EQ(cc::request::lease(queues, {.count = 10, .block_ms = 0, .for_ms = 2000}),
              (cc::command_args{"LEASE", "COUNT", "10", "BLOCK", "0", "FOR", "2000", "FROM", "hi",
                                "lo"}));
    EXPECT_TRUE(throws_invalid_argument([] { cc::request::lease({}); }));
}

TEST(client_request, lease_token_commands) {
    EXPECT_EQ(cc::request::ack("L"), (cc::command_args{"ACK", "L"}));
    EXPECT_EQ(cc::request::ack("L", ""), (cc::command_args{"ACK", "L", ""}));
    EXPECT_EQ(cc::request::ack("L", "res"), (cc::command_args{"ACK", "L", "res"}));
    EXPECT_EQ(cc::request::fail("L", "boom"), (cc::command_args{"FAIL", "L", "boom"}));
    EXPECT_EQ(cc::request::fail("L", "boom", {.retry_ms = 50}),
              (cc::command_args{"FAIL", "L", "boom", "RETRY", "50"}));
    EXPECT_EQ(cc::request::fail("L", "boom", {.noretry = true}),
              (cc::command_args{"FAIL", "L", "boom", "NORETRY"}));
    EXPECT_TRUE(throws_invalid_argument(
        [] { cc::request::fail("L", "e", {.retry_ms = 1, .noretry = true}); }));
    EXPECT_EQ(cc::request::release("L"), (cc::command_args{"RELEASE", "L"}));
    EXPECT_EQ(cc::request::release("L", 300), (cc::command_args{"RELEASE", "L", "DELAY", "300"}));
    EXPECT_EQ(cc::request::extend("L", 9000), (cc::command_args{"EXTEND", "L", "9000"}));
}

TEST(client_request, inspection_and_admin_commands) {
    EXPECT_EQ(cc::request::cancel("7"), (cc::command_args{"CANCEL", "7"}));
    EXPECT_EQ(cc::request::task("7"), (cc::command_args{"TASK", "7"}));
    EXPECT_EQ(cc::request::result("7"), (cc::command_args{"RESULT", "7"}));
    EXPECT_EQ(cc::request::result("7", 0), (cc::command_args{"RESULT", "7", "WAIT", "0"}));
    EXPECT_EQ(cc::request::qlen("q"), (cc::command_args{"QLEN", "q"}));
    EXPECT_EQ(cc::request::queues(), (cc::command_args{"QUEUES"}));
    EXPECT_EQ(cc::request::dead("q"), (cc::command_args{"DEAD", "q"}));
    EXPECT_EQ(cc::request::dead("q", 5), (cc::command_args{"DEAD", "q", "COUNT", "5"}));
    EXPECT_EQ(cc::request::requeue("7"), (cc::command_args{"REQUEUE", "7"}));
    EXPECT_EQ(cc::request::qpurge("q"), (cc::command_args{"QPURGE", "q"}));
    EXPECT_EQ(cc::request::auth(std::nullopt, "pw"), (cc::command_args{"AUTH", "pw"}));
    EXPECT_EQ(cc::request::auth(std::string("u"), "pw"), (cc::command_args{"AUTH", "u", "pw"}));
}

TEST(client_reply, enqueue_returns_the_id) {
    EXPECT_EQ(cc::parse::id(decode("$3\r\n123\r\n")), "123");
    EXPECT_EQ(server_error_word([] { cc::parse::id(decode("-ERR syntax error\r\n")); }), "ERR");
}

constexpr std::string_view leased_resp2 =
    "*1\r\n*18\r\n$2\r\nid\r\n$2\r\n42\r\n$5\r\nlease\r\n$4\r\n42#1\r\n$5\r\nqueue\r\n$1\r\nq\r\n"
    "$4\r\nname\r\n$4\r\nsend\r\n$7\r\npayload\r\n$2\r\nhi\r\n$7\r\nattempt\r\n:1\r\n"
    "$8\r\nlease_ms\r\n:30000\r\n$10\r\ntimeout_ms\r\n:0\r\n$8\r\npriority\r\n:3\r\n";

TEST(client_reply, leased_tasks_from_a_resp2_flat_array) {
    auto tasks = cc::parse::leased_tasks(decode(leased_resp2));
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0], (cc::leased_task{"42", "42#1", "q", "send", "hi", 1, 30000, 0, 3}));
}

TEST(client_reply, leased_tasks_from_a_resp3_map_with_unknown_fields_skipped) {
    auto tasks = cc::parse::leased_tasks(
        decode("*1\r\n%3\r\n$2\r\nid\r\n$1\r\n9\r\n$5\r\nlease\r\n$3\r\n9#2\r\n"
               "$5\r\nextra\r\n:5\r\n"));
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0].id, "9");
    EXPECT_EQ(tasks[0].lease, "9#2");
    EXPECT_TRUE(cc::parse::leased_tasks(decode("*0\r\n")).empty());
    EXPECT_TRUE(cc::parse::leased_tasks(decode("*-1\r\n")).empty());
}

TEST(client_reply, malformed_lease_replies_are_unexpected) {
    EXPECT_TRUE(throws_unexpected_reply([] { cc::parse::leased_tasks(decode(":1\r\n")); }));
    EXPECT_TRUE(throws_unexpected_reply(
        [] { cc::parse::leased_tasks(decode("*1\r\n*1\r\n$2\r\nid\r\n")); }));
    EXPECT_TRUE(throws_unexpected_reply(  // a task without a lease token
        [] { cc::parse::leased_tasks(decode("*1\r\n*2\r\n$2\r\nid\r\n$1\r\n1\r\n")); }));
}

TEST(client_reply, lease_outcomes) {
    EXPECT_EQ(cc::parse::lease_reply(decode(":1\r\n")), cc::lease_outcome::ok);
    EXPECT_EQ(cc::parse::lease_reply(decode("-LEASELOST lease is no longer current\r\n")),
              cc::lease_outcome::lease_lost);
    EXPECT_EQ(cc::parse::lease_reply(decode("-CANCELLED task was cancelled; stop\r\n")),
              cc::lease_outcome::cancelled);
    EXPECT_EQ(server_error_word([] { cc::parse::lease_reply(decode("-ERR wrong number\r\n")); }),
              "ERR");
    // A code word is a whole word: LEASELOSTX is some other error.
    EXPECT_EQ(server_error_word([] { cc::parse::lease_reply(decode("-LEASELOSTX x\r\n")); }),
              "LEASELOSTX");
}

TEST(client_reply, fail_outcomes) {
    EXPECT_EQ(cc::parse::fail_reply(decode("+retry\r\n")), cc::fail_outcome::retry);
    EXPECT_EQ(cc::parse::fail_reply(decode("+dead\r\n")), cc::fail_outcome::dead);
    EXPECT_EQ(cc::parse::fail_reply(decode("-LEASELOST gone\r\n")), cc::fail_outcome::lease_lost);
    EXPECT_TRUE(throws_unexpected_reply([] { cc::parse::fail_reply(decode("+maybe\r\n")); }));
}

TEST(client_reply, task_info_with_nil_fields_and_unknown_id) {
    auto t = cc::parse::task(
        decode("*20\r\n$2\r\nid\r\n$1\r\n5\r\n$5\r\nqueue\r\n$1\r\nq\r\n$4\r\nname\r\n$0\r\n\r\n"
               "$5\r\nstate\r\n$4\r\ndead\r\n$7\r\nattempt\r\n:4\r\n$8\r\npriority\r\n:0\r\n"
               "$6\r\nresult\r\n$-1\r\n$5\r\nerror\r\n$4\r\nboom\r\n$10\r\ncreated_ms\r\n:1000\r\n"
               "$10\r\nupdated_ms\r\n:2000\r\n"));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->id, "5");
    EXPECT_EQ(t->queue, "q");
    EXPECT_EQ(t->name, "");
    EXPECT_EQ(t->state, cc::task_state::dead);
    EXPECT_EQ(t->attempt, 4);
    EXPECT_FALSE(t->result);
    EXPECT_EQ(t->error, "boom");
    EXPECT_EQ(t->created_ms, 1000);
    EXPECT_EQ(t->updated_ms, 2000);
    EXPECT_FALSE(cc::parse::task(decode("$-1\r\n")));
    EXPECT_FALSE(cc::parse::task(decode("_\r\n")));
    EXPECT_TRUE(throws_unexpected_reply(
        [] { cc::parse::task(decode("*2\r\n$5\r\nstate\r\n$7\r\nexpired\r\n")); }));
}

TEST(client_reply, result_distinguishes_the_four_outcomes) {
    using status = cc::task_result::status;
    auto ok = cc::parse::result(decode("$4\r\ndone\r\n"));
    EXPECT_EQ(ok.state, status::succeeded);
    EXPECT_EQ(ok.value, "done");
    auto empty = cc::parse::result(decode("$0\r\n\r\n"));
    EXPECT_EQ(empty.state, status::succeeded);
    EXPECT_EQ(empty.value, "");
    EXPECT_EQ(cc::parse::result(decode("$-1\r\n")).state, status::none);
    auto failed = cc::parse::result(decode("-FAILED disk on fire\r\n"));
    EXPECT_EQ(failed.state, status::failed);
    EXPECT_EQ(failed.value, "disk on fire");
    auto cancelled = cc::parse::result(decode("-CANCELLED task was cancelled\r\n"));
    EXPECT_EQ(cancelled.state, status::cancelled);
    EXPECT_EQ(server_error_word([] { cc::parse::result(decode("-ERR syntax error\r\n")); }), "ERR");
}

TEST(client_reply, counts_flags_and_lists) {
    EXPECT_EQ(cc::parse::integer(decode(":17\r\n")), 17);
    EXPECT_TRUE(cc::parse::flag(decode(":1\r\n")));
    EXPECT_FALSE(cc::parse::flag(decode(":0\r\n")));
    EXPECT_EQ(cc::parse::strings(decode("*2\r\n$1\r\na\r\n$1\r\nb\r\n")),
              (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(cc::parse::strings(decode("*0\r\n")).empty());
    EXPECT_EQ(cc::parse::simple(decode("+PONG\r\n")), "PONG");
    EXPECT_TRUE(throws_unexpected_reply([] { cc::parse::integer(decode("+x\r\n")); }));
    EXPECT_TRUE(throws_unexpected_reply([] { cc::parse::strings(decode(":3\r\n")); }));
}

TEST(client_reply, server_error_splits_code_word_and_detail) {
    cc::server_error e("NOAUTH Authentication required.");
    EXPECT_EQ(e.code_word(), "NOAUTH");
    EXPECT_EQ(e.detail(), "Authentication required.");
    EXPECT_STREQ(e.what(), "NOAUTH Authentication required.");
    cc::server_error bare("ERR");
    EXPECT_EQ(bare.code_word(), "ERR");
    EXPECT_EQ(bare.detail(), "");
}
