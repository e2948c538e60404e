// The --pipe line codec (worker/src/pipe_protocol.hpp): pure, no processes.
#include "pipe_protocol.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

namespace conveyor::worker::detail {
namespace {

namespace json = boost::json;

client::task_context context(std::string payload) {
    client::task_context c;
    c.id = "42-1";
    c.name = "resize";
    c.queue = "images";
    c.payload = std::move(payload);
    c.attempt = 3;
    c.timeout = std::chrono::milliseconds(1500);
    return c;
}

TEST(pipe_protocol, request_carries_every_field_on_one_line) {
    std::string line = encode_request(context("a \"b\"\nc"));
    ASSERT_TRUE(line.ends_with("\n"));
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    auto v = json::parse(line).as_object();
    EXPECT_EQ(v["id"], "42-1");
    EXPECT_EQ(v["name"], "resize");
    EXPECT_EQ(v["queue"], "images");
    EXPECT_EQ(v["payload"], "a \"b\"\nc");
    EXPECT_EQ(v["attempt"], 3);
    EXPECT_EQ(v["timeout_ms"], 1500);
    EXPECT_FALSE(v.contains("payload_encoding"));
}

TEST(pipe_protocol, payload_not_utf8_is_base64) {
    auto v = json::parse(encode_request(context(std::string("\xc3\x28", 2)))).as_object();
    EXPECT_EQ(v["payload"], "wyg=");
    EXPECT_EQ(v["payload_encoding"], "base64");
}

TEST(pipe_protocol, cancel_line) {
    EXPECT_EQ(encode_cancel("42-1"), "{\"cancel\":\"42-1\"}\n");
}

client::handler_result result_of(std::string_view line) {
    auto parsed = parse_reply(line, "7");
    EXPECT_TRUE(std::holds_alternative<client::handler_result>(parsed))
        << std::get<protocol_error>(parsed).message;
    return std::get<client::handler_result>(parsed);
}

std::string error_of(std::string_view line) {
    auto parsed = parse_reply(line, "7");
    EXPECT_TRUE(std::holds_alternative<protocol_error>(parsed)) << line;
    return std::holds_alternative<protocol_error>(parsed) ? std::get<protocol_error>(parsed).message
                                                          : std::string();
}

TEST(pipe_protocol, replies) {
    auto r = result_of(R"({"id":"7","ok":true,"result":"héllo"})");
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.data, "héllo");
    EXPECT_EQ(result_of(R"({"id":"7","ok":true,"result":{"a":[1,true,null]}})").data,
              R"({"a":[1,true,null]})");
    EXPECT_EQ(result_of(R"({"id":"7","ok":true,"result":12})").data, "12");
    EXPECT_EQ(result_of(R"({"id":"7","ok":true})").data, "");
    r = result_of(R"({"id":"7","ok":false,"error":"boom","retry":false})");
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.retry);
    EXPECT_EQ(r.data, "boom");
    r = result_of(R"({"id":"7","ok":false,"error":"later"})");
    EXPECT_TRUE(r.retry);
}

TEST(pipe_protocol, protocol_errors) {
    EXPECT_EQ(error_of("hello"), "the handler wrote a line that is not a JSON object: hello");
    EXPECT_EQ(error_of("[1]"), "the handler wrote a line that is not a JSON object: [1]");
    EXPECT_EQ(error_of(R"({"ok":true})"),
              R"(the handler wrote a reply without a string "id": {"ok":true})");
    EXPECT_EQ(error_of(R"({"id":"8","ok":true})"),
              "the handler answered task 8 while running task 7");
    EXPECT_EQ(error_of(R"({"id":"7","ok":"yes"})"),
              R"(the handler wrote a reply without a boolean "ok": {"id":"7","ok":"yes"})");
    EXPECT_EQ(error_of(R"({"id":"7","ok":false,"retry":1})"),
              R"(the handler wrote a non-boolean "retry": {"id":"7","ok":false,"retry":1})");
}

}  // namespace
}  // namespace conveyor::worker::detail
