// Random command sequences (fixed seeds): the records of a live broker, replayed as they come
// into a second one, keep both in the same state; and the books (counts) always add up.
#include "random_broker_run.hpp"

#include <iostream>

namespace conveyor::core::testing {
namespace {

TEST(random_replay, live_and_replayed_brokers_agree_after_every_step) {
    stats_snapshot seen;
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
        random_run run(seed);
        for (int i = 0; i < 600; ++i) {
            run.step();
            if (i % 50 == 49) {
                run.check();
                ASSERT_FALSE(::testing::Test::HasFailure()) << "seed " << seed << " step " << i;
            }
        }
        const stats_snapshot s = run.stats();
        seen.tasks_expired += s.tasks_expired;
        seen.tasks_dead += s.tasks_dead;
        seen.tasks_cancelled += s.tasks_cancelled;
        seen.tasks_succeeded += s.tasks_succeeded;
    }
    // The runs reach every kind of ending, or they would prove little.
    EXPECT_GT(seen.tasks_expired, 20u);
    EXPECT_GT(seen.tasks_dead, 20u);
    EXPECT_GT(seen.tasks_cancelled, 20u);
    EXPECT_GT(seen.tasks_succeeded, 20u);
    std::cout << "[ random ] expired " << seen.tasks_expired << ", dead " << seen.tasks_dead
              << ", cancelled " << seen.tasks_cancelled << ", succeeded " << seen.tasks_succeeded
              << "\n";
}

}  // namespace
}  // namespace conveyor::core::testing
