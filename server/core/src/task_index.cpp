#include "task_index.hpp"

#include <cstring>
#include <functional>
#include <new>

namespace conveyor::core::detail {

task* make_task(std::string_view id, std::string_view name, std::string_view payload) {
    const std::size_t size = sizeof(task) + id.size() + name.size() + payload.size();
    void* block = ::operator new(size);
    auto* t = new (block) task{};
    t->id_len = static_cast<std::uint16_t>(id.size());
    t->name_len = static_cast<std::uint16_t>(name.size());
    t->payload_len = static_cast<std::uint32_t>(payload.size());
    char* out = reinterpret_cast<char*>(t + 1);
    if (!id.empty()) std::memcpy(out, id.data(), id.size());
    if (!name.empty()) std::memcpy(out + id.size(), name.data(), name.size());
    if (!payload.empty())
        std::memcpy(out + id.size() + name.size(), payload.data(), payload.size());
    return t;
}

void destroy_task(task* t) noexcept {
    t->~task();
    ::operator delete(static_cast<void*>(t));
}

namespace {
// Growth keeps load <= 7/8 (linear probing stays short at that load with a good hash);
// shrinking below 1/8 returns memory after a large queue drains.
constexpr std::size_t min_capacity = 16;
bool too_full(std::size_t size, std::size_t cap) {
    return size * 8 > cap * 7;
}
}  // namespace

std::size_t task_index::home(std::string_view id) const noexcept {
    return std::hash<std::string_view>{}(id) & (slots_.size() - 1);
}

task* task_index::find(std::string_view id) const noexcept {
    if (size_ == 0) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = home(id);; i = (i + 1) & mask) {
        task* t = slots_[i];
        if (t == nullptr) return nullptr;
        if (t->id() == id) return t;
    }
}

void task_index::insert(task* t) {
    if (slots_.empty()) {
        rehash(min_capacity);
    } else if (too_full(size_ + 1, slots_.size())) {
        rehash(slots_.size() * 2);
    }
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = home(t->id());
    while (slots_[i] != nullptr) i = (i + 1) & mask;
    slots_[i] = t;
    ++size_;
}

bool task_index::erase(const task* t) noexcept {
    if (size_ == 0) return false;
    const std::size_t mask = slots_.size() - 1;
    std::size_t hole = home(t->id());
    while (slots_[hole] != t) {
        if (slots_[hole] == nullptr) return false;
        hole = (hole + 1) & mask;
    }
    slots_[hole] = nullptr;
    --size_;
    // Backward shift: move later members of the probe run into the hole when the hole lies
    // on their probe path (between their home slot and where they sit, cyclically).
    for (std::size_t j = (hole + 1) & mask; slots_[j] != nullptr; j = (j + 1) & mask) {
        const std::size_t h = home(slots_[j]->id());
        const bool hole_on_path = (j > hole) ? (h <= hole || h > j) : (h <= hole && h > j);
        if (hole_on_path) {
            slots_[hole] = slots_[j];
            slots_[j] = nullptr;
            hole = j;
        }
    }
    if (size_ == 0) {
        std::vector<task*>().swap(slots_);
    } else if (slots_.size() > min_capacity && size_ * 8 < slots_.size()) {
        try {
            rehash(slots_.size() / 4);  // lands at load 1/2: no rehash again soon either way
        } catch (const std::bad_alloc&) {
            // Keeping the larger table is correct, only less compact.
        }
    }
    return true;
}

void task_index::rehash(std::size_t new_capacity) {
    std::vector<task*> old(new_capacity, nullptr);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (task* t : old) {
        if (t == nullptr) continue;
        std::size_t i = home(t->id());
        while (slots_[i] != nullptr) i = (i + 1) & mask;
        slots_[i] = t;
    }
}

}  // namespace conveyor::core::detail
