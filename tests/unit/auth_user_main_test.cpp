// server/auth user_main.hpp: `conveyor user add|del|list` driven in-process with string
// streams (the process-level behaviour is in tests/integration/test_user_cli.py).
#include <conveyor/auth/password.hpp>
#include <conveyor/auth/user_main.hpp>
#include <conveyor/auth/users_file.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace conveyor::auth;

class auth_user_main : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/conveyor-user-main-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        file_ = dir_ + "/users";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    int run(std::vector<std::string> args, const std::string& stdin_text = "") {
        std::istringstream in(stdin_text);
        out_.str("");
        err_.str("");
        return user_main(args, in, out_, err_);
    }
    const user* find(const std::string& name) {
        parsed_ = read_users_file(file_, false);
        EXPECT_TRUE(parsed_.ok()) << parsed_.error;
        return parsed_.document.find(name);
    }

    std::string dir_, file_;
    std::ostringstream out_, err_;
    users_parse_result parsed_;
};

TEST_F(auth_user_main, add_then_update_replaces_password_and_rules) {
    ASSERT_EQ(run({"add", "--users", file_, "alice", "--password", "pw1", "--allow",
                   "enqueue:emails.*", "--allow", "inspect:*"}),
              0)
        << err_.str();
    EXPECT_EQ(out_.str(), "added user alice\n");
    const user* alice = find("alice");
    ASSERT_NE(alice, nullptr);
    EXPECT_TRUE(verify_password("pw1", alice->password_hash));
    EXPECT_EQ(alice->rules.size(), 2u);

    ASSERT_EQ(
        run({"add", "--users=" + file_, "alice", "--password=-", "--allow=consume:jobs"}, "pw2\n"),
        0)
        << err_.str();
    EXPECT_EQ(out_.str(), "updated user alice\n");
    alice = find("alice");
    ASSERT_NE(alice, nullptr);
    EXPECT_FALSE(verify_password("pw1", alice->password_hash));
    EXPECT_TRUE(verify_password("pw2", alice->password_hash));
    ASSERT_EQ(alice->rules.size(), 1u);
    EXPECT_EQ(alice->rules[0].to_string(), "consume:jobs");
}

TEST_F(auth_user_main, list_prints_rules_never_hashes) {
    ASSERT_EQ(run({"add", "--users", file_, "alice", "--password", "pw", "--allow", "all:*"}), 0);
    ASSERT_EQ(run({"add", "--users", file_, "bob", "--password", "pw"}), 0);
    EXPECT_NE(err_.str().find("bob has no rules"), std::string::npos) << err_.str();
    ASSERT_EQ(run({"list", "--users", file_}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "alice all:*\nbob (no rules: can do nothing)\n");
    EXPECT_EQ(out_.str().find("pbkdf2"), std::string::npos);
}

TEST_F(auth_user_main, del_removes_and_refuses_unknown_users) {
    ASSERT_EQ(run({"add", "--users", file_, "alice", "--password", "pw"}), 0);
    EXPECT_EQ(run({"del", "--users", file_, "bob"}), 1);
    EXPECT_NE(err_.str().find("no user 'bob'"), std::string::npos) << err_.str();
    ASSERT_EQ(run({"del", "--users", file_, "alice"}), 0);
    EXPECT_EQ(find("alice"), nullptr);
    EXPECT_EQ(run({"del", "--users", dir_ + "/absent", "alice"}), 1);
}

TEST_F(auth_user_main, usage_errors_exit_2) {
    EXPECT_EQ(run({}), 2);
    EXPECT_EQ(run({"frobnicate"}), 2);
    EXPECT_EQ(run({"add", "alice", "--password", "pw"}), 2);  // no --users
    EXPECT_NE(err_.str().find("--users <file> is required"), std::string::npos);
    EXPECT_EQ(run({"add", "--users", file_, "alice"}), 2);                         // no --password
    EXPECT_EQ(run({"add", "--users", file_, "alice", "--password", "-"}, ""), 2);  // empty stdin
    EXPECT_EQ(run({"add", "--users", file_, "alice", "--password", "pw", "--allow", "eat:*"}), 2);
    EXPECT_NE(err_.str().find("unknown verb 'eat'"), std::string::npos) << err_.str();
    EXPECT_EQ(run({"add", "--users", file_, "al ice", "--password", "pw"}), 2);
    EXPECT_EQ(run({"add", "--users", file_, "a", "b", "--password", "pw"}), 2);
    EXPECT_EQ(run({"list", "--users", file_, "--password", "pw"}), 2);
    EXPECT_EQ(run({"list", "--users", file_, "--bogus"}), 2);
    EXPECT_EQ(run({"list", "--users"}), 2);
    EXPECT_FALSE(std::filesystem::exists(file_));  // nothing was written by any of them
    EXPECT_EQ(run({"--help"}), 0);
    EXPECT_NE(out_.str().find("conveyor user add"), std::string::npos);
}

TEST_F(auth_user_main, a_malformed_file_is_left_untouched) {
    { std::ofstream(file_) << "# mine\nuser alice notahash\n"; }
    EXPECT_EQ(run({"add", "--users", file_, "bob", "--password", "pw"}), 1);
    EXPECT_NE(err_.str().find(file_ + ":2: user 'alice'"), std::string::npos) << err_.str();
    EXPECT_EQ(run({"list", "--users", file_}), 1);
    std::ifstream in(file_);
    std::stringstream s;
    s << in.rdbuf();
    EXPECT_EQ(s.str(), "# mine\nuser alice notahash\n");
}

}  // namespace
