// `conveyor server` arguments (runtime/config.hpp): exact flag names with "did you mean", a
// stray argument, durations with units and the bare unit of each flag.
#include <conveyor/runtime/config.hpp>

#include <gtest/gtest.h>

using conveyor::server::parse_server_args;

namespace {

std::string refusal(const std::vector<std::string>& args) {
    const auto outcome = parse_server_args(args);
    EXPECT_FALSE(outcome.config);
    EXPECT_EQ(outcome.exit_code, 1);
    return outcome.message;
}

}  // namespace

TEST(server_args, a_prefix_of_a_flag_is_not_taken_for_it) {
    EXPECT_EQ(refusal({"--data", "/tmp/x"}),
              "conveyor server: unknown option '--data' (did you mean '--data-dir'?)\n"
              "Try 'conveyor server --help'.");
    EXPECT_EQ(refusal({"--prot=7206"}),
              "conveyor server: unknown option '--prot' (did you mean '--port' or "
              "'--protected-mode'?)\nTry 'conveyor server --help'.");
}

TEST(server_args, an_argument_after_the_flags_is_refused) {
    EXPECT_EQ(refusal({"--port", "7000", "extra"}),
              "conveyor server: unexpected argument 'extra' (a config file goes first: conveyor "
              "server <file> [--flag value ...])\nTry 'conveyor server --help'.");
}

TEST(server_args, durations_take_units_and_bare_numbers_keep_each_flags_unit) {
    const auto outcome =
        parse_server_args({"--default-lease-ms", "2s", "--tcp-keepalive", "5m", "--idle-timeout",
                           "90", "--amqp-consumer-timeout", "1500", "--amqp-heartbeat", "30"});
    ASSERT_TRUE(outcome.config) << outcome.message;
    EXPECT_EQ(outcome.config->default_lease_ms, 2000);
    EXPECT_EQ(outcome.config->tcp_keepalive, 300);
    EXPECT_EQ(outcome.config->idle_timeout_ms, 90'000);
    EXPECT_EQ(outcome.config->amqp_consumer_timeout_ms, 1500);
    EXPECT_EQ(outcome.config->amqp_heartbeat, 30);
    EXPECT_EQ(outcome.config->amqp_port, 5673);
}

TEST(server_args, whole_second_settings_refuse_a_fraction) {
    EXPECT_EQ(refusal({"--amqp-heartbeat", "1500ms"}),
              "conveyor server: --amqp-heartbeat must be 0-65535 whole seconds (or with a unit: "
              "5m), got '1500ms'");
}
