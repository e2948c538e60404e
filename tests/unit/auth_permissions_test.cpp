// server/auth permissions.hpp: rules, allowed(), and the command -> verb table.
#include <conveyor/auth/permissions.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace conveyor::auth;

rule make_rule(const std::string& text) {
    std::string problem;
    auto r = parse_rule(text, problem);
    EXPECT_TRUE(r.has_value()) << problem;
    return r ? *r : rule{};
}

TEST(auth_permissions, a_user_with_no_rules_can_do_nothing) {
    const user nobody{"nobody", "", {}};
    for (auto v : {verb::enqueue, verb::consume, verb::inspect, verb::admin}) {
        EXPECT_FALSE(allowed(nobody, v, "emails"));
        EXPECT_FALSE(allowed(nobody, v, ""));
        EXPECT_FALSE(allowed_on_every_queue(nobody, v));
    }
}

TEST(auth_permissions, rules_grant_one_verb_on_matching_queues) {
    const user producer{"producer", "", {make_rule("enqueue:emails.*"), make_rule("inspect:*")}};
    EXPECT_TRUE(allowed(producer, verb::enqueue, "emails.high"));
    EXPECT_FALSE(allowed(producer, verb::enqueue, "billing"));
    EXPECT_FALSE(allowed(producer, verb::consume, "emails.high"));
    EXPECT_FALSE(allowed(producer, verb::admin, "emails.high"));
    EXPECT_TRUE(allowed(producer, verb::inspect, "billing"));
    EXPECT_TRUE(allowed_on_every_queue(producer, verb::inspect));
    EXPECT_FALSE(allowed_on_every_queue(producer, verb::enqueue));
}

TEST(auth_permissions, all_grants_every_verb) {
    const user ops{"ops", "", {make_rule("all:reports")}};
    for (auto v : {verb::enqueue, verb::consume, verb::inspect, verb::admin}) {
        EXPECT_TRUE(allowed(ops, v, "reports"));
        EXPECT_FALSE(allowed(ops, v, "reports2"));
    }
    EXPECT_EQ(ops.rules[0].to_string(), "all:reports");
}

TEST(auth_permissions, bad_rules_are_refused_with_a_reason) {
    std::string problem;
    EXPECT_FALSE(parse_rule("enqueue", problem));
    EXPECT_NE(problem.find("<verb>:<queue-glob>"), std::string::npos) << problem;
    EXPECT_FALSE(parse_rule("publish:emails", problem));
    EXPECT_NE(problem.find("unknown verb 'publish'"), std::string::npos) << problem;
    EXPECT_FALSE(parse_rule("consume:", problem));
    EXPECT_NE(problem.find("empty queue glob"), std::string::npos) << problem;
    EXPECT_FALSE(parse_rule("consume:a b", problem));
    EXPECT_FALSE(parse_rule("consume:a\tb", problem));
    EXPECT_FALSE(parse_rule("consume:" + std::string(513, 'a'), problem));
    EXPECT_TRUE(parse_rule("consume:" + std::string(512, 'a'), problem));
    EXPECT_FALSE(parse_rule("Consume:x", problem));  // verbs are lower-case
    auto r = parse_rule("consume:a:b", problem);     // the first colon splits
    ASSERT_TRUE(r);
    EXPECT_EQ(r->queues.text(), "a:b");
}

TEST(auth_permissions, commands_map_to_the_verbs_of_the_issue) {
    const auto expect_verb = [](const char* command, verb v) {
        EXPECT_EQ(access_for_command(command), command_access::checked) << command;
        EXPECT_EQ(command_verb(command), v) << command;
    };
    for (auto c : {"ENQUEUE", "LPUSH", "RPUSH"}) expect_verb(c, verb::enqueue);
    for (auto c : {"LEASE", "ACK", "FAIL", "RELEASE", "EXTEND", "LPOP", "RPOP", "BLPOP", "BRPOP"}) {
        expect_verb(c, verb::consume);
    }
    for (auto c : {"TASK", "RESULT", "QLEN", "LLEN", "QUEUES", "DEAD", "INFO"}) {
        expect_verb(c, verb::inspect);
    }
    for (auto c : {"CANCEL", "REQUEUE", "QPURGE", "DEL", "CONFIG", "DEBUG"}) {
        expect_verb(c, verb::admin);
    }
    expect_verb("enqueue", verb::enqueue);  // case-insensitive
    expect_verb("bRpOp", verb::consume);
}

TEST(auth_permissions, connection_commands_are_open_and_unknown_ones_are_not) {
    for (auto c :
         {"PING", "ECHO", "QUIT", "HELLO", "AUTH", "SELECT", "CLIENT", "COMMAND", "TIME"}) {
        EXPECT_EQ(access_for_command(c), command_access::open) << c;
        EXPECT_FALSE(command_verb(c)) << c;
    }
    for (auto c : {"FLUSHALL", "SET", "", "ENQUEUEX", "LEAS"}) {
        EXPECT_EQ(access_for_command(c), command_access::unknown) << c;
        EXPECT_FALSE(command_verb(c)) << c;
    }
}

TEST(auth_permissions, verb_names) {
    EXPECT_EQ(verb_name(verb::enqueue), "enqueue");
    EXPECT_EQ(verb_name(verb::consume), "consume");
    EXPECT_EQ(verb_name(verb::inspect), "inspect");
    EXPECT_EQ(verb_name(verb::admin), "admin");
}

}  // namespace
