// queue_name_problem: which bytes a queue name may hold (docs/commands.md, "Queue names").
#include <conveyor/runtime/queue_name.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using conveyor::server::max_queue_name_bytes;
using conveyor::server::queue_name_problem;

TEST(QueueName, OneTo255BytesWithoutControlBytesAreValid) {
    EXPECT_FALSE(queue_name_problem("q"));
    EXPECT_FALSE(queue_name_problem(std::string(max_queue_name_bytes, 'q')));
    EXPECT_FALSE(queue_name_problem("celery@host: a=b, #x *?"));
    EXPECT_FALSE(queue_name_problem("caf\xc3\xa9"));
    EXPECT_FALSE(queue_name_problem("\xff\xfe not utf-8"));
}

TEST(QueueName, EmptyTooLongAndControlBytesAreRefusedWithTheRule) {
    EXPECT_EQ(*queue_name_problem(""), "queue name must not be empty");
    const auto too_long = queue_name_problem(std::string(256, 'q'));
    ASSERT_TRUE(too_long);
    EXPECT_EQ(too_long->rfind("queue name is longer than 255 bytes", 0), 0u);
    EXPECT_TRUE(queue_name_problem(std::string(70000, 'q')));
    for (const std::string& bad :
         {std::string("a\0b", 3), std::string("x\r\nrole:slave"), std::string("tab\t"),
          std::string("\x1b[2J"), std::string("del\x7f"), std::string("\x1f")}) {
        const auto problem = queue_name_problem(bad);
        ASSERT_TRUE(problem) << bad;
        EXPECT_EQ(problem->rfind("queue name contains a control byte", 0), 0u);
    }
}

}  // namespace
