// The id -> task index: an open-addressing hash set of task pointers with linear probing.
//
// - A slot is one pointer and the key is the task's own id, so an indexed task costs
//   8 / load-factor bytes here (9-18 bytes), not a map node (~50 bytes).
// - The top 16 bits of a user-space pointer are zero on x86-64 and AArch64 (48-bit virtual
//   addresses), so each slot keeps 16 bits of the id's hash there: a probe compares that tag
//   in the table and touches the task (a cache miss) only when the tag matches. A pointer
//   that does not fit (a wider address space) switches the index to untagged slots for good.
// - Erase leaves a tombstone, so it touches no other task.
// - Resizing is incremental, as Redis's dict: a new table takes the inserts while each insert
//   and erase moves a few slots of the old one, so growing past millions of tasks never
//   stalls the broker for a whole-table rehash. Lookups consult both tables meanwhile.
#pragma once

#include "task.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

namespace conveyor::core::detail {

class task_index {
public:
    task* find(std::string_view id) const noexcept;
    // Contract: no task with the same id is indexed.
    void insert(task* t);
    // Inserts `t` unless a task with its id is indexed; returns whether it did. One probe of
    // the table both checks and places.
    bool insert_unique(task* t);
    // Removes `t` if indexed; returns whether it was.
    bool erase(const task* t) noexcept;
    std::size_t size() const noexcept { return size_; }
    bool resizing() const noexcept { return !old_.slots.empty(); }

    template <class Fn>
    void for_each(Fn&& fn) const {
        for (const table* tab : {&now_, &old_}) {
            for (std::uintptr_t s : tab->slots) {
                if (s > tombstone) fn(task_of(s));
            }
        }
    }

private:
    static constexpr std::uintptr_t tombstone = 1;  // tasks are aligned: never a task's slot

    // calloc'd: a large table comes from fresh pages the kernel has already zeroed, so making
    // one costs no pass over its memory (std::vector would write every slot).
    struct slot_array {
        struct free_deleter {
            void operator()(std::uintptr_t* p) const noexcept { std::free(p); }
        };
        std::unique_ptr<std::uintptr_t[], free_deleter> data;
        std::size_t n = 0;

        slot_array() = default;
        explicit slot_array(std::size_t count);  // all zero; throws std::bad_alloc
        std::size_t size() const noexcept { return n; }
        bool empty() const noexcept { return n == 0; }
        std::uintptr_t& operator[](std::size_t i) noexcept { return data[i]; }
        std::uintptr_t operator[](std::size_t i) const noexcept { return data[i]; }
        const std::uintptr_t* begin() const noexcept { return data.get(); }
        const std::uintptr_t* end() const noexcept { return data.get() + n; }
        std::uintptr_t* begin() noexcept { return data.get(); }
        std::uintptr_t* end() noexcept { return data.get() + n; }
    };

    struct table {
        slot_array slots;  // 0 = empty, 1 = tombstone
        std::size_t tombstones = 0;
    };

    task* task_of(std::uintptr_t slot) const noexcept;
    std::uintptr_t slot_for(task* t, std::size_t hash) const noexcept;
    bool may_match(std::uintptr_t slot, std::size_t hash) const noexcept;
    std::size_t find_in(const table& tab, std::string_view id, std::size_t hash) const noexcept;
    static void place(table& tab, std::uintptr_t slot, std::size_t hash) noexcept;
    void start_resize(std::size_t new_capacity);
    void prepare_insert(task* t);
    void migrate(std::size_t budget) noexcept;
    void untag_all() noexcept;

    table now_;
    table old_;                      // being moved into now_; empty when no resize is under way
    std::size_t migrated_ = 0;       // old_ slots before this one are moved (left as tombstones)
    std::size_t tombstone_run_ = 0;  // first moved slot after the last empty one met
    std::size_t size_ = 0;           // live tasks in both tables
    bool tagged_ = true;
};

}  // namespace conveyor::core::detail
