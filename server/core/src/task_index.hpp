// The id -> task index: an open-addressing hash set of task pointers (linear probing,
// backward-shift deletion). A slot is one pointer; the key is the task's own id, so an
// indexed task costs 8 / load-factor bytes here (9-18 bytes), not a map node (~50 bytes).
#pragma once

#include "task.hpp"

#include <cstddef>
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
        for (task* t : slots_) {
            if (t != nullptr) fn(t);
        }
    }

private:
    std::size_t home(std::string_view id) const noexcept;
    void rehash(std::size_t new_capacity);

    std::vector<task*> slots_;
    std::size_t size_ = 0;
};

}  // namespace conveyor::core::detail
