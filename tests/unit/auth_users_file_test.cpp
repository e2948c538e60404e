// server/auth users_file.hpp: parsing with line-numbered errors, limits, the canonical writer
// that keeps comments, and the atomic file replacement.
#include <conveyor/auth/password.hpp>
#include <conveyor/auth/users_file.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using namespace conveyor::auth;

// One cheap, valid hash for the whole file (hashing costs ~ms each).
const std::string& some_hash() {
    static const std::string hash = hash_password("pw", 10);
    return hash;
}

std::string parse_error(const std::string& text) {
    return parse_users(text, "users.conf").error;
}

TEST(auth_users_file, parses_users_rules_comments_and_blank_lines) {
    const std::string text =
        "# operators\n"
        "\n"
        "user alice " +
        some_hash() +
        " allow enqueue:emails.* allow inspect:*\n"
        "  # indented comment\n"
        "user\tbob\t" +
        some_hash() +
        "\r\n"
        "user carol " +
        some_hash() + "   allow all:reports  \n";
    const auto parsed = parse_users(text, "users.conf");
    ASSERT_TRUE(parsed.ok()) << parsed.error;
    const auto users = parsed.document.users();
    ASSERT_EQ(users.size(), 3u);
    EXPECT_EQ(users[0]->name, "alice");
    EXPECT_EQ(users[0]->password_hash, some_hash());
    ASSERT_EQ(users[0]->rules.size(), 2u);
    EXPECT_EQ(users[0]->rules[0].to_string(), "enqueue:emails.*");
    EXPECT_TRUE(allowed(*users[0], verb::enqueue, "emails.x"));
    EXPECT_TRUE(users[1]->rules.empty());
    EXPECT_EQ(users[1]->name, "bob");
    EXPECT_TRUE(allowed(*users[2], verb::admin, "reports"));
    EXPECT_EQ(parsed.document.lines().size(), 6u);
    EXPECT_EQ(parsed.document.find("bob"), users[1]);
    EXPECT_EQ(parsed.document.find("dave"), nullptr);
}

TEST(auth_users_file, errors_name_the_source_and_line) {
    const std::string h = some_hash();
    EXPECT_EQ(parse_error("# ok\nuser alice " + h + "\nuser bob plaintext\n"),
              "users.conf:3: user 'bob': the password hash is not "
              "pbkdf2-sha256$<iterations>$<salt>$<hash> (make one with 'conveyor user add')");
    EXPECT_EQ(parse_error("\n\nalice " + h + "\n").rfind("users.conf:3: expected 'user ", 0), 0u);
    EXPECT_EQ(parse_error("user alice\n"),
              "users.conf:1: a user line needs a name and a password hash");
    EXPECT_EQ(parse_error("user alice " + h + " allow\n"), "users.conf:1: 'allow' without a rule");
    EXPECT_EQ(parse_error("user alice " + h + " deny consume:*\n"),
              "users.conf:1: expected 'allow <verb>:<queue-glob>', got 'deny'");
    EXPECT_EQ(
        parse_error("user alice " + h + " allow publish:*\n"),
        "users.conf:1: unknown verb 'publish' (expected enqueue, consume, inspect, admin or all)");
    EXPECT_EQ(parse_error("user alice " + h + "\nuser alice " + h + "\n"),
              "users.conf:2: user 'alice' is defined twice");
    EXPECT_EQ(parse_error(std::string("user a\0b ", 9) + h + "\n"),
              "users.conf:1: a NUL byte (not a text file?)");
}

TEST(auth_users_file, limits_are_enforced) {
    const std::string h = some_hash();
    EXPECT_EQ(parse_error("# x\n" + std::string(max_users_line_bytes + 1, 'x') + "\n"),
              "users.conf:2: line longer than 65536 bytes");
    EXPECT_NE(parse_error("user " + std::string(129, 'n') + " " + h + "\n").find("bad user name"),
              std::string::npos);
    EXPECT_TRUE(parse_users("user " + std::string(128, 'n') + " " + h + "\n", "f").ok());
    std::string many_rules = "user alice " + h;
    for (std::size_t i = 0; i <= max_rules_per_user; ++i) many_rules += " allow consume:q";
    many_rules += "\n";
    EXPECT_EQ(parse_error(many_rules), "users.conf:1: more than 1024 rules for one user");
}

TEST(auth_users_file, too_many_users_is_an_error) {
    const std::string h = some_hash();
    std::string text;
    for (std::size_t i = 0; i <= max_users; ++i)
        text += "user u" + std::to_string(i) + " " + h + "\n";
    EXPECT_EQ(parse_error(text), "users.conf:100001: more than 100000 users");
}

TEST(auth_users_file, writer_keeps_comments_and_canonicalises_users) {
    const std::string h = some_hash();
    const std::string text = "# header comment\n\nuser alice " + h +
                             "    allow  enqueue:emails.*\n# about bob\nuser bob " + h + "\n";
    auto parsed = parse_users(text, "f");
    ASSERT_TRUE(parsed.ok()) << parsed.error;
    EXPECT_EQ(format_users(parsed.document), "# header comment\n\nuser alice " + h +
                                                 " allow enqueue:emails.*\n# about bob\nuser bob " +
                                                 h + "\n");
    std::string problem;
    EXPECT_TRUE(parsed.document.put(user{"alice", h, {*parse_rule("consume:x", problem)}}));
    EXPECT_FALSE(parsed.document.put(user{"carol", h, {}}));
    EXPECT_TRUE(parsed.document.remove("bob"));
    EXPECT_FALSE(parsed.document.remove("bob"));
    EXPECT_EQ(format_users(parsed.document), "# header comment\n\nuser alice " + h +
                                                 " allow consume:x\n# about bob\nuser carol " + h +
                                                 "\n");
    // What the writer writes, the parser reads back unchanged.
    const auto again = parse_users(format_users(parsed.document), "f");
    ASSERT_TRUE(again.ok()) << again.error;
    EXPECT_EQ(format_users(again.document), format_users(parsed.document));
}

class auth_users_file_on_disk : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/conveyor-auth-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }
    static std::string slurp(const std::string& p) {
        std::ifstream in(p, std::ios::binary);
        std::ostringstream s;
        s << in.rdbuf();
        return s.str();
    }
    std::string dir_;
};

TEST_F(auth_users_file_on_disk, atomic_write_creates_0600_and_keeps_an_existing_mode) {
    const auto p = path("users");
    ASSERT_EQ(write_file_atomically(p, "one\n"), "");
    EXPECT_EQ(slurp(p), "one\n");
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::chmod(p.c_str(), 0640), 0);
    ASSERT_EQ(write_file_atomically(p, "two\n"), "");
    EXPECT_EQ(slurp(p), "two\n");
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
    // No temporary file is left behind.
    int entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++entries;
    EXPECT_EQ(entries, 1);
}

TEST_F(auth_users_file_on_disk, write_failure_is_reported) {
    const auto problem = write_file_atomically(path("no/such/dir/users"), "x\n");
    EXPECT_NE(problem.find("cannot create"), std::string::npos) << problem;
}

TEST_F(auth_users_file_on_disk, read_reports_missing_files_unless_asked_not_to) {
    const auto missing = read_users_file(path("absent"), false);
    EXPECT_FALSE(missing.ok());
    EXPECT_NE(missing.error.find("absent: cannot read the users file"), std::string::npos)
        << missing.error;
    const auto empty = read_users_file(path("absent"), true);
    EXPECT_TRUE(empty.ok());
    EXPECT_TRUE(empty.document.users().empty());

    const auto p = path("users");
    ASSERT_EQ(write_file_atomically(p, "# c\nuser alice " + some_hash() + " allow all:*\n"), "");
    const auto read = read_users_file(p, false);
    ASSERT_TRUE(read.ok()) << read.error;
    ASSERT_EQ(read.document.users().size(), 1u);

    ASSERT_EQ(write_file_atomically(p, "# c\nuser alice nohash\n"), "");
    EXPECT_EQ(read_users_file(p, false).error.rfind(p + ":2: user 'alice'", 0), 0u);
}

}  // namespace
