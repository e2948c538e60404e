// --handlers <file> parsing (worker/src/handler_file.cpp).
#include <conveyor/worker/process_handlers.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace conveyor::worker {
namespace {

class handler_file_test : public ::testing::Test {
protected:
    void TearDown() override { std::filesystem::remove(path_); }
    std::string write(const std::string& text) {
        std::ofstream(path_) << text;
        return path_.string();
    }
    // The error message of loading `text`, or "" when it loads.
    std::string error_of(const std::string& text) {
        try {
            load_handler_file(write(text));
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    }
    std::filesystem::path path_ = std::filesystem::temp_directory_path() /
                                  ("conveyor-handlers-" + std::to_string(::getpid()) + ".conf");
};

TEST_F(handler_file_test, routes_with_options_and_comments) {
    auto file = load_handler_file(
        write("# comment\n"
              "\n"
              "resize  exec timeout=30000 concurrency=2 -- convert - -resize 50% -\n"
              "   # indented comment\n"
              "email pipe -- python3 examples/handler.py --flag -- x\n"
              "noop builtin concurrency=8 -- echo\r\n"
              "* builtin timeout=1000 -- fail\n"
              "nap builtin timeout=1.5s -- sleep\n"));
    ASSERT_EQ(file.routes.size(), 5u);
    const auto& r0 = file.routes[0];
    EXPECT_EQ(r0.name, "resize");
    EXPECT_EQ(r0.kind, "exec");
    EXPECT_EQ(r0.command, "convert - -resize 50% -");
    ASSERT_TRUE(r0.timeout);
    EXPECT_EQ(r0.timeout->count(), 30000);
    EXPECT_EQ(r0.concurrency, 2u);
    EXPECT_EQ(file.routes[1].kind, "pipe");
    EXPECT_EQ(file.routes[1].command, "python3 examples/handler.py --flag -- x");
    EXPECT_FALSE(file.routes[1].timeout);
    EXPECT_EQ(file.routes[1].concurrency, 0u);
    EXPECT_EQ(file.routes[2].command, "echo");
    EXPECT_EQ(file.routes[2].concurrency, 8u);
    EXPECT_EQ(file.routes[3].name, "*");
    EXPECT_EQ(file.routes[3].command, "fail");
    ASSERT_TRUE(file.routes[4].timeout);
    EXPECT_EQ(file.routes[4].timeout->count(), 1500);  // a duration, as the flags take
}

TEST_F(handler_file_test, the_shipped_example_loads) {
    auto file = load_handler_file(std::string(CONVEYOR_SOURCE_DIR) + "/conf/handlers.conf");
    EXPECT_FALSE(file.routes.empty());
}

TEST_F(handler_file_test, errors_name_file_and_line) {
    const std::string where = path_.string() + ":2: ";
    EXPECT_EQ(error_of("# ok\nresize shell -- x\n"),
              where + "unknown handler kind 'shell' (expected exec, pipe or builtin)");
    EXPECT_EQ(error_of("# ok\nresize exec x\n"),
              where +
                  "expected '<name|*> <exec|pipe|builtin> [timeout=<ms>] "
                  "[concurrency=<n>] -- <command>'");
    EXPECT_EQ(error_of("# ok\nresize exec --\n"), where + "missing the command after ' -- '");
    EXPECT_EQ(error_of("# ok\nresize -- x\n"), where + "expected a task name and a handler kind");
    const std::string positive =
        "timeout= takes a positive duration (500ms, 30s, 1.5s, 5m, 1h, 2d; a bare number is "
        "milliseconds)";
    EXPECT_EQ(error_of("# ok\nresize exec timeout=abc -- x\n"), where + positive);
    EXPECT_EQ(error_of("# ok\nresize exec timeout=0 -- x\n"), where + positive);
    EXPECT_EQ(error_of("# ok\nresize exec timeout=0s -- x\n"), where + positive);
    EXPECT_EQ(error_of("# ok\nresize exec concurrency=0 -- x\n"),
              where + "concurrency= takes a number from 1 to 100000");
    EXPECT_EQ(error_of("# ok\nresize exec retries=3 -- x\n"),
              where + "unknown option 'retries=3' (expected timeout=<ms> or concurrency=<n>)");
    EXPECT_EQ(error_of("# ok\nx builtin -- nap\n"),
              where + "unknown builtin 'nap' (expected echo, sleep or fail)");
    EXPECT_EQ(error_of("a exec -- x\na pipe -- y\n"), where + "task name 'a' already has a route");
}

TEST_F(handler_file_test, empty_and_missing_files) {
    EXPECT_EQ(error_of("# only comments\n"), path_.string() + ": no routes (the file is empty)");
    EXPECT_THROW(load_handler_file("/nonexistent/handlers.conf"), std::runtime_error);
}

}  // namespace
}  // namespace conveyor::worker
