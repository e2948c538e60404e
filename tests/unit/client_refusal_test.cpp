// Refusals read from error replies: which ones waiting will not heal, and the one line the
// tools print for each (its hint, never a password).
#include <conveyor/client/refusal.hpp>

#include <gtest/gtest.h>

namespace cc = conveyor::client;
using kind = cc::refusal_kind;

namespace {

kind of(std::string_view reply) {
    return cc::classify_refusal(cc::server_error(reply));
}

bool has(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST(client_refusal, each_refusal_is_told_apart_by_its_reply) {
    EXPECT_EQ(of("DENIED Conveyor is running in protected mode because ..."), kind::protected_mode);
    EXPECT_EQ(of("NOAUTH Authentication required."), kind::auth_required);
    EXPECT_EQ(of("WRONGPASS invalid username-password pair or user is disabled."),
              kind::wrong_password);
    EXPECT_EQ(of("ERR AUTH <password> called without any password configured for the default "
                 "user. Are you sure your configuration is correct?"),
              kind::password_unset);
    EXPECT_EQ(of("NOPERM User bob has no permissions to consume on the 'q' queue"),
              kind::no_permission);
    EXPECT_EQ(of("ERR unknown command 'LEASE', with args beginning with: 'COUNT' '1' "),
              kind::not_conveyor);
    EXPECT_EQ(of("ERR unknown command `ENQUEUE`, with args beginning with: "), kind::not_conveyor);
}

TEST(client_refusal, replies_that_may_heal_are_temporary_and_the_rest_ordinary) {
    for (auto reply :
         {"LOADING Redis is loading the dataset in memory", "BUSY script", "TRYAGAIN later",
          "MISCONF disk is full", "OOM command not allowed", "ERR max number of clients reached"})
        EXPECT_EQ(of(reply), kind::temporary) << reply;
    EXPECT_EQ(of("ERR queue name must not be empty"), kind::none);
    EXPECT_EQ(of("LEASELOST lease is no longer current"), kind::none);
    EXPECT_FALSE(cc::is_permanent(kind::temporary));
    EXPECT_FALSE(cc::is_permanent(kind::none));
    for (auto k : {kind::protected_mode, kind::auth_required, kind::wrong_password,
                   kind::password_unset, kind::no_permission, kind::not_conveyor})
        EXPECT_TRUE(cc::is_permanent(k));
}

TEST(client_refusal, noauth_names_the_flag_the_variable_and_the_url_form) {
    auto text = cc::explain_refusal(cc::server_error("NOAUTH Authentication required."));
    EXPECT_TRUE(has(text, "NOAUTH Authentication required.")) << text;
    EXPECT_TRUE(has(text, "--password")) << text;
    EXPECT_TRUE(has(text, "$CONVEYOR_PASSWORD")) << text;
    EXPECT_TRUE(has(text, "redis://[user]:password@host:port")) << text;
}

TEST(client_refusal, denied_is_said_in_one_line_with_what_to_do) {
    auto text = cc::explain_refusal(
        cc::server_error("DENIED Conveyor is running in protected mode because no password is "
                         "set for the default user (--requirepass) and no users ..."));
    EXPECT_TRUE(has(text, "protected mode (DENIED)")) << text;
    EXPECT_TRUE(has(text, "--requirepass")) << text;
    EXPECT_TRUE(has(text, "--protected-mode no")) << text;
    EXPECT_FALSE(has(text, "\n"));
}

TEST(client_refusal, the_other_refusals_keep_the_reply_and_add_a_hint) {
    auto wrong = cc::explain_refusal(cc::server_error("WRONGPASS invalid username-password pair"));
    EXPECT_TRUE(has(wrong, "WRONGPASS invalid username-password pair")) << wrong;
    EXPECT_TRUE(has(wrong, "$CONVEYOR_USER")) << wrong;
    auto noperm = cc::explain_refusal(
        cc::server_error("NOPERM User bob has no permissions to consume on the 'q' queue"));
    EXPECT_TRUE(has(noperm, "User bob has no permissions to consume")) << noperm;
    EXPECT_TRUE(has(noperm, "conveyor user add --allow")) << noperm;
    auto redis = cc::explain_refusal(cc::server_error("ERR unknown command 'LEASE'"));
    EXPECT_TRUE(has(redis, "not a Conveyor server")) << redis;
    EXPECT_TRUE(has(redis, "ERR unknown command 'LEASE'")) << redis;
    // Not a refusal: the reply as sent.
    EXPECT_EQ(cc::explain_refusal(cc::server_error("MISCONF disk is full")),
              "MISCONF disk is full");
}
