// The one access decision (access_control::access_of) and the RESP command check built on it,
// driven without sockets: a broker_service with no log, a users file in a temporary
// directory (one PBKDF2 round per hash, so AUTH stays cheap), requests run through
// execute_command as resp_session runs them.
#include <conveyor/resp/commands.hpp>
#include <conveyor/runtime/access_control.hpp>
#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/config.hpp>

#include <conveyor/auth/password.hpp>
#include <conveyor/protocol/resp_writer.hpp>

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using namespace conveyor;
using namespace conveyor::server;
using kind = access_control::access_kind;

struct no_waits final : resp_waiter {
    void on_leased(std::span<const core::leased_task>) override {}
    void on_popped(std::string_view, std::string_view) override {}
    void on_result(const core::task_view&) override {}
    void on_deferred(const deferred_reply&) override {}
};

class access_test : public ::testing::Test {
protected:
    access_test() {
        spdlog::set_level(spdlog::level::off);
        dir_ = std::filesystem::temp_directory_path() /
               ("conveyor-access-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
        config_.users_file = (dir_ / "users").string();
        config_.requirepass = "root";
        config_.port = 0;
        write_users({{"alice", "allow enqueue:a-* allow consume:a-*"}, {"bob", "allow all:b-*"}});
        service_.emplace(io_.get_executor(), config_);
        EXPECT_FALSE(service_->access().load());
    }
    ~access_test() override {
        service_.reset();
        std::filesystem::remove_all(dir_);
    }

    void write_users(std::vector<std::pair<std::string, std::string>> users) {
        static const std::string hash = auth::hash_password("pw", 1);
        std::ofstream f(config_.users_file, std::ios::trunc);
        for (const auto& [name, rules] : users)
            f << "user " << name << " " << hash << " " << rules << "\n";
    }
    void reload(std::vector<std::pair<std::string, std::string>> users) {
        write_users(std::move(users));
        service_->reload();
    }

    client_state login(std::optional<std::string_view> user, std::string_view password) {
        client_state c;
        c.id = ++next_id_;
        c.peer = "127.0.0.1:4000";
        EXPECT_FALSE(service_->admit(c));
        auto verdict = service_->access().authenticate(c, user, password, nullptr);
        EXPECT_TRUE(verdict.has_value());
        EXPECT_EQ(verdict->outcome, access_control::auth_outcome::ok);
        access_control::apply(c, *verdict);
        return c;
    }

    // Runs one request; returns its reply as RESP2 bytes. A command that blocks is left
    // waiting when `keep_block` is set (its context in `blocked`), else given up.
    std::string run(client_state& c, std::vector<std::string> args, bool keep_block = false) {
        std::string out;
        protocol::resp_writer w(out, protocol::resp_version::resp2);
        args_ = std::move(args);
        command_context ctx{args_, w, *service_, c, waits_, now_, {}};
        execute_command(ctx);
        if (ctx.block && !keep_block) ctx.cancel_block();
        blocked = ctx.block;
        return out;
    }

    kind access_kind_of(client_state& c) { return service_->access().access_of(c).kind; }

    boost::asio::io_context io_;
    std::filesystem::path dir_;
    server_config config_;
    std::optional<broker_service> service_;
    no_waits waits_;
    core::instant now_{1'000'000'000, 1'700'000'000'000};
    std::vector<std::string> args_;
    std::optional<block_request> blocked;
    std::uint64_t next_id_ = 0;
};

TEST_F(access_test, default_user_may_do_everything_and_file_users_have_rules) {
    auto root = login(std::nullopt, "root");
    EXPECT_EQ(access_kind_of(root), kind::everything);
    auto alice = login("alice", "pw");
    const auto d = service_->access().access_of(alice);
    ASSERT_EQ(d.kind, kind::rules);
    ASSERT_NE(d.rules, nullptr);
    EXPECT_TRUE(auth::allowed(*d.rules, auth::verb::enqueue, "a-1"));
    EXPECT_FALSE(auth::allowed(*d.rules, auth::verb::enqueue, "b-1"));
    client_state fresh;
    EXPECT_FALSE(service_->admit(fresh));
    EXPECT_EQ(access_kind_of(fresh), kind::unauthenticated);
}

TEST_F(access_test, removed_user_is_removed_once_then_unauthenticated_never_unrestricted) {
    auto alice = login("alice", "pw");
    reload({{"bob", "allow all:b-*"}});
    EXPECT_EQ(access_kind_of(alice), kind::removed);
    EXPECT_FALSE(alice.authenticated);
    EXPECT_EQ(alice.rules, nullptr);
    EXPECT_EQ(access_kind_of(alice), kind::unauthenticated);
    EXPECT_EQ(run(alice, {"LEASE", "FROM", "b-private"}), "-NOAUTH Authentication required.\r\n");
    EXPECT_EQ(run(alice, {"PING"}), "+PONG\r\n");
}

TEST_F(access_test, changed_user_gets_its_new_rules_at_the_next_check) {
    auto alice = login("alice", "pw");
    EXPECT_EQ(run(alice, {"ENQUEUE", "a-1", "x"}).front(), '$');
    reload({{"alice", "allow consume:a-*"}, {"bob", "allow all:b-*"}});
    const auto d = service_->access().access_of(alice);
    ASSERT_EQ(d.kind, kind::rules);
    EXPECT_FALSE(auth::allowed(*d.rules, auth::verb::enqueue, "a-1"));
    EXPECT_EQ(run(alice, {"ENQUEUE", "a-1", "x"}),
              "-NOPERM User alice has no permissions to enqueue on the 'a-1' queue\r\n");
}

TEST_F(access_test, task_of_a_queue_without_any_verb_is_answered_as_an_unknown_id) {
    auto bob = login("bob", "pw");
    const auto id_reply = run(bob, {"ENQUEUE", "b-secret", "payload"});
    const auto id =
        id_reply.substr(id_reply.find("\r\n") + 2, id_reply.size() - id_reply.find("\r\n") - 4);
    const auto leased = run(bob, {"LEASE", "FROM", "b-secret"});
    const auto at = leased.find(id + "#");
    ASSERT_NE(at, std::string::npos);
    const auto lease = leased.substr(at, leased.find("\r\n", at) - at);
    auto alice = login("alice", "pw");
    const std::string unknown = "ffffffffffff";
    for (const auto& cmd :
         std::vector<std::vector<std::string>>{{"TASK"}, {"RESULT"}, {"CANCEL"}, {"REQUEUE"}}) {
        auto with = [&](const std::string& arg) {
            auto args = cmd;
            args.push_back(arg);
            return run(alice, args);
        };
        EXPECT_EQ(with(id), with(unknown)) << cmd[0];
        EXPECT_EQ(with(id).find("b-secret"), std::string::npos) << cmd[0];
    }
    EXPECT_EQ(run(alice, {"RESULT", id, "WAIT", "0"}, true), "$-1\r\n");
    EXPECT_FALSE(blocked);
    EXPECT_EQ(run(alice, {"ACK", lease}), run(alice, {"ACK", unknown + "#1"}));
    EXPECT_EQ(run(alice, {"ACK", lease}).rfind("-LEASELOST", 0), 0u);
    // Untouched: bob still holds it.
    EXPECT_EQ(run(bob, {"ACK", lease}), ":1\r\n");
}

TEST_F(access_test, task_of_a_queue_with_some_verb_gets_noperm_naming_it) {
    auto alice = login("alice", "pw");
    const auto id_reply = run(alice, {"ENQUEUE", "a-own", "x"});
    const auto id =
        id_reply.substr(id_reply.find("\r\n") + 2, id_reply.size() - id_reply.find("\r\n") - 4);
    EXPECT_EQ(run(alice, {"TASK", id}),
              "-NOPERM User alice has no permissions to inspect on the 'a-own' queue\r\n");
}

TEST_F(access_test, blocked_command_is_checked_again_after_a_reload) {
    auto alice = login("alice", "pw");
    auto bob = login("bob", "pw");
    run(alice, {"LEASE", "BLOCK", "0", "FROM", "a-q"}, true);
    ASSERT_TRUE(blocked);
    const auto alice_block = *blocked;
    const std::vector<std::string> alice_args = args_;
    run(bob, {"BLPOP", "b-q", "0"}, true);
    ASSERT_TRUE(blocked);
    const auto bob_block = *blocked;
    const std::vector<std::string> bob_args = args_;

    std::string out;
    protocol::resp_writer w(out, protocol::resp_version::resp2);
    auto recheck = [&](client_state& c, const std::vector<std::string>& args) {
        out.clear();
        command_context ctx{args, w, *service_, c, waits_, now_, {}};
        return recheck_blocked_command(ctx);
    };
    EXPECT_TRUE(recheck(alice, alice_args));  // nothing changed
    EXPECT_EQ(out, "");
    reload({{"alice", "allow enqueue:a-*"}});
    EXPECT_FALSE(recheck(alice, alice_args));
    EXPECT_EQ(out, "-NOPERM User alice has no permissions to consume on the 'a-q' queue\r\n");
    EXPECT_FALSE(recheck(bob, bob_args));
    EXPECT_EQ(out, "-NOAUTH Authentication required.\r\n");
    service_->forget_waiter(alice_block.waiter);
    service_->forget_waiter(bob_block.waiter);
}

}  // namespace
