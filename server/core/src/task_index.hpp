// The id -> task index: an open-addressing hash set of task pointers (linear probing;
// erase leaves a tombstone, cleared by the next rehash, so it touches no other task). A slot is one pointer; the key is the task's own id, so an
// indexed task costs 8 / load-factor bytes here (9-18 bytes), not a map node (~50 bytes).
// The top 16 bits of a user-space pointer are zero on x86-64 and AArch64 (48-bit virtual
// addresses), so each slot keeps 16 bits of the id's hash there: a probe compares that tag
// in the table and touches the task (a cache miss) only when the tag matches. A pointer that
// does not fit (a wider address space) switches the table to untagged slots for good.
#pragma once

#include "task.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace conveyor::core::detail {

class task_index {
public:
    task* find(std::string_view id) const noexcept;
    // Contract: no task with the same id is indexed.
    void insert(task* t);
    // Removes `t` if indexed; returns whether it was.
    bool erase(const task* t) noexcept;
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return slots_.size(); }

    template <class Fn>
    void for_each(Fn&& fn) const {
        for (std::uintptr_t s : slots_) {
            if (s > tombstone) fn(task_of(s));
        }
    }

private:
    static constexpr std::uintptr_t tombstone = 1;  // tasks are aligned: never a task's slot

    task* task_of(std::uintptr_t slot) const noexcept;
    std::uintptr_t slot_for(task* t, std::size_t hash) const noexcept;
    bool may_match(std::uintptr_t slot, std::size_t hash) const noexcept;
    void place(std::uintptr_t slot, std::size_t hash) noexcept;
    void rehash(std::size_t new_capacity);
    std::size_t find_slot(std::string_view id, std::size_t hash) const noexcept;

    std::vector<std::uintptr_t> slots_;  // 0 = empty, 1 = tombstone (an erased task's slot)
    std::size_t tombstones_ = 0;
    bool tagged_ = true;
    std::size_t size_ = 0;
};

}  // namespace conveyor::core::detail
