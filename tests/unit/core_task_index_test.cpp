// The id index against a model: random inserts, erases and lookups (hits and misses) through
// growth and shrinking, with pointer tags in play.
#include "../../server/core/src/task_index.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace conveyor::core::detail {
namespace {

struct owned_tasks {
    std::vector<task*> all;
    ~owned_tasks() {
        for (task* t : all) destroy_task(t);
    }
    task* make(const std::string& id) {
        all.push_back(make_task(id, "", "payload"));
        return all.back();
    }
};

TEST(task_index, matches_a_model_through_growth_and_shrinking) {
    owned_tasks tasks;
    task_index index;
    std::unordered_map<std::string, task*> model;
    std::mt19937_64 rng(42);
    for (int step = 0; step < 200000; ++step) {
        // Ids from a small space so that inserts, hits, misses and erases all happen often;
        // the phase shifts the balance so the table both grows and shrinks.
        const bool growing = (step / 50000) % 2 == 0;
        const std::string id = std::to_string(rng() % 40000);
        const auto op = rng() % 10;
        auto it = model.find(id);
        if (op < (growing ? 6u : 2u)) {
            if (it == model.end()) {
                task* t = tasks.make(id);
                index.insert(t);
                model.emplace(id, t);
            }
        } else if (op < 8) {
            if (it != model.end()) {
                ASSERT_TRUE(index.erase(it->second));
                model.erase(it);
            }
        } else {
            ASSERT_EQ(index.find(id), it == model.end() ? nullptr : it->second) << id;
        }
        ASSERT_EQ(index.size(), model.size());
    }
    for (const auto& [id, t] : model) ASSERT_EQ(index.find(id), t);
    std::size_t visited = 0;
    index.for_each([&](task* t) {
        ++visited;
        ASSERT_EQ(model.at(std::string(t->id())), t);
    });
    EXPECT_EQ(visited, model.size());
}

TEST(task_index, erase_of_an_unindexed_task_changes_nothing) {
    owned_tasks tasks;
    task_index index;
    task* in = tasks.make("a");
    task* out = tasks.make("a");  // same id, different task
    index.insert(in);
    EXPECT_FALSE(index.erase(out));
    EXPECT_EQ(index.find("a"), in);
    EXPECT_TRUE(index.erase(in));
    EXPECT_EQ(index.find("a"), nullptr);
    EXPECT_FALSE(index.erase(in));
}

TEST(task_index, growth_moves_slots_a_few_at_a_time_and_finds_everything_meanwhile) {
    owned_tasks tasks;
    task_index index;
    std::vector<task*> all;
    bool saw_resize = false;
    for (int i = 0; i < 100000; ++i) {
        all.push_back(tasks.make(std::string("id").append(std::to_string(i))));
        index.insert(all.back());
        if (index.resizing() && !saw_resize) {
            saw_resize = true;
            // Mid-resize: every task inserted so far is found, in whichever table it sits.
            for (task* t : all) ASSERT_EQ(index.find(t->id()), t);
        }
    }
    EXPECT_TRUE(saw_resize);
    // Each insert moves a bounded number of slots, so a resize spans many inserts; erasing
    // drives it to completion too.
    for (std::size_t i = 0; i < all.size(); i += 2) ASSERT_TRUE(index.erase(all[i]));
    for (std::size_t i = 0; i < all.size(); ++i)
        ASSERT_EQ(index.find(all[i]->id()), i % 2 == 0 ? nullptr : all[i]);
    for (int i = 0; i < 100000 && index.resizing(); ++i) {
        task* t = tasks.make(std::string("x").append(std::to_string(i)));
        index.insert(t);
        ASSERT_TRUE(index.erase(t));
    }
    EXPECT_FALSE(index.resizing());
    EXPECT_EQ(index.size(), all.size() / 2);
}

}  // namespace
}  // namespace conveyor::core::detail
